"""SGD with momentum, Nesterov and weight decay: torch.optim.SGD's update, without its import
cost; and the optimiser a run gets: parameter groups by learning-rate factor, the schedule.

torch.optim's Optimizer imports torch._dynamo (the compiler stack) on first use: 2.4 s of a
3 to 10 s run on a 2-core CPU, paid by every one of a grid's processes. This is the same
update rule (tests/test_sgd.py checks it against torch.optim.SGD step for step), with
multi-tensor `_foreach` kernels, and per-group learning rates set by the trainer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from transferlab.config import TrainConfig


class SGD:
    """param_groups: dicts with "params" and "lr" (and an optional "name")."""

    def __init__(
        self, param_groups: list[dict], momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0
    ) -> None:
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.param_groups = [dict(g, params=list(g["params"]), initial_lr=g["lr"]) for g in param_groups]
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay
        self.buffers: list[list[torch.Tensor] | None] = [None for _ in self.param_groups]

    def zero_grad(self) -> None:
        """Drop gradients (set to None, as torch.optim does by default)."""
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    def set_lr_multiplier(self, factor: float) -> None:
        """Every group's lr = its initial lr x factor (the schedule)."""
        for g in self.param_groups:
            g["lr"] = g["initial_lr"] * factor

    @torch.no_grad()
    def step(self) -> None:
        for i, g in enumerate(self.param_groups):
            params = [p for p in g["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if self.weight_decay:
                grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
            if self.momentum:
                grads = self._momentum(i, params, grads)
            torch._foreach_add_(params, grads, alpha=-g["lr"])

    def _momentum(self, i: int, params: list[torch.Tensor], grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """buf = momentum * buf + grad (buf = grad at the first step); Nesterov looks ahead."""
        bufs = self.buffers[i]
        if bufs is None or len(bufs) != len(params):
            bufs = self.buffers[i] = [gr.detach().clone() for gr in grads]
        else:
            torch._foreach_mul_(bufs, self.momentum)
            torch._foreach_add_(bufs, grads)
        if self.nesterov:
            return torch._foreach_add(grads, bufs, alpha=self.momentum)
        return bufs

    def state_dict(self) -> dict:
        """Learning rates and momentum buffers (tensors and plain types: weights_only-loadable)."""
        return {"lr": [g["lr"] for g in self.param_groups], "buffers": self.buffers}

    def load_state_dict(self, state: dict) -> None:
        for g, lr in zip(self.param_groups, state["lr"]):
            g["lr"] = lr
        self.buffers = [None if b is None else [t.clone() for t in b] for b in state["buffers"]]


@dataclass(frozen=True)
class ParamGroup:
    """Trainable parameters that share a learning-rate factor."""

    params: list[nn.Parameter]
    lr_factor: float = 1.0
    name: str = "new"


def total_steps(cfg: TrainConfig, steps_per_epoch_: int) -> int:
    """A run's budget in optimiser steps: `iterations` where the study gave iterations, else epochs."""
    return cfg.iterations if cfg.iterations is not None else cfg.epochs * steps_per_epoch_


def lr_multiplier(step: int, total: int, warmup: int, cfg: TrainConfig, steps_per_epoch_: int) -> float:
    """Learning-rate multiplier at an optimiser step: linear warm-up, then the schedule (a step
    schedule drops every step_iterations steps, else every step_epochs epochs)."""
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return 0.1 ** (step // (cfg.step_iterations or cfg.step_epochs * steps_per_epoch_))
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(groups: list[ParamGroup], cfg: TrainConfig) -> SGD:
    """SGD over trainable parameters only, one group per learning-rate factor."""
    param_groups = [
        {"params": [p for p in g.params if p.requires_grad], "lr": cfg.lr * g.lr_factor, "name": g.name} for g in groups
    ]
    param_groups = [g for g in param_groups if g["params"]]
    return SGD(
        param_groups, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=cfg.weight_decay
    )
