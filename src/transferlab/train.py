"""The trainer: `fit(model, task, config, ...) -> History`, one code path for CPU and CUDA.

On CUDA: bf16 autocast, channels_last, cudnn.benchmark. On the CPU: fp32, channels_last.
A checkpoint is written after every epoch (temp file, then rename); a run started again
with the same fingerprint resumes from it and ends with the same numbers.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from transferlab.accuracy import MEAN_CLASS, mean_class_top1, unbalanced
from transferlab.artifacts import atomic_torch_save
from transferlab.config import TrainConfig
from transferlab.data.batches import channel_stats, normalize, random_crop_flip, steps_per_epoch, train_batches
from transferlab.data.dataset import Images, TaskData
from transferlab.data.files import ImageFiles
from transferlab.data.sampling import stratified_holdout
from transferlab.private import compile_caches
from transferlab.progress import RunProgress
from transferlab.sgd import SGD, ParamGroup, lr_multiplier, make_optimizer, total_steps  # noqa: F401 (ParamGroup, make_optimizer: part of this API)


@dataclass
class History:
    """One record per evaluation, and the run's summary statistics."""

    records: list[dict] = field(default_factory=list)
    first_step_at: float | None = None  # wall clock (time.time()) after the first optimiser step
    train_seconds: float = 0.0  # in the epoch loop: steps, evaluations, epoch checkpoints (this process)
    input_stats: tuple[torch.Tensor, torch.Tensor] | None = None  # the normalisation used (mean, std)
    resumed_epochs: int = 0  # epochs restored from an epoch checkpoint (a killed run started again)
    images: dict = field(default_factory=dict)  # images trained on; where the validation part came from, its size

    def summary(self, best_k: int) -> dict:
        """Final and best top-1, and the paper's statistic: the mean of the k best evaluations."""
        top1 = [r["test_top1"] for r in self.records]
        k = min(best_k, len(top1))
        out = {
            "final_top1": top1[-1],
            "best_top1": max(top1),
            "topk_mean_top1": sum(sorted(top1, reverse=True)[:k]) / k,
            "best_k": k,
            "evaluations": len(top1),
            "epochs_run": self.records[-1].get("epoch"),
            **self.images,
        }
        if "val_top1" in self.records[-1]:
            best = _best_val_index(self.records)
            out |= {"best_val_top1": self.records[best]["val_top1"], "test_top1_at_best_val": top1[best]}
        if "test_mean_class_top1" in self.records[-1]:  # at the evaluations of the reported top-1
            chosen = [best] if "val_top1" in self.records[-1] else sorted(range(len(top1)), key=lambda i: -top1[i])[:k]
            per_class = [self.records[i]["test_mean_class_top1"] for i in chosen]
            out |= {"final_mean_class_top1": self.records[-1]["test_mean_class_top1"]}
            out |= {MEAN_CLASS: sum(per_class) / len(per_class)}
        return out


def _best_val_index(records: list[dict]) -> int:
    """Index of the first evaluation with the highest validation top-1."""
    vals = [r["val_top1"] for r in records]
    return vals.index(max(vals))


def stalled(records: list[dict], patience: int) -> bool:
    """Early stopping: `patience` evaluations since the best validation top-1."""
    return bool(patience and records) and len(records) - 1 - _best_val_index(records) >= patience


def compiled(model: nn.Module) -> nn.Module:
    """torch.compile, its generated code cached in private folders, not /tmp (private.py)."""
    compile_caches()
    return torch.compile(model)


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on CUDA; disabled (fp32) elsewhere."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _in_order(x: Images, batch_size: int, device: torch.device):
    """(uint8 images on `device`, their positions) in order: slices of a tensor, or decoded files."""
    if isinstance(x, ImageFiles):
        for xb, pos in x.batches(batch_size, augment=False, pin=device.type == "cuda"):
            yield xb.to(device, non_blocking=True), pos.to(device)
        return
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size], torch.arange(start, min(start + batch_size, len(x)), device=device)


@torch.inference_mode()
def _hits(model: nn.Module, x: Images, y: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, batch_size: int):
    """Whether `model` classifies each of the uint8 images x (on the model's device, or files) correctly."""
    was_training = model.training
    model.eval()
    device = y.device
    hits = torch.zeros(len(y), dtype=torch.bool, device=device)
    for xb, pos in _in_order(x, batch_size, device):
        with autocast(device):
            logits = model(normalize(xb, mean, std))
        hits[pos] = logits.argmax(1) == y[pos]
    model.train(was_training)
    return hits


def evaluate(
    model: nn.Module, x: Images, y: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, batch_size: int = 1000
) -> float:
    """Top-1 accuracy of `model` on uint8 images x (on the model's device, or files)."""
    return _hits(model, x, y, mean, std, batch_size).sum().item() / max(1, len(y))


def evaluate_per_class(
    model: nn.Module, x: Images, y: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, batch_size: int = 1000
) -> tuple[float, float]:
    """Top-1 and mean per-class accuracy (accuracy.py) of `model` on images x, from one pass."""
    hits = _hits(model, x, y, mean, std, batch_size)
    return hits.sum().item() / max(1, len(y)), mean_class_top1(hits.cpu().numpy(), y.cpu().numpy())


@dataclass(frozen=True)
class FitOptions:
    """How to run one fit: where, with which seed, checkpointed where, shown how."""

    device: torch.device
    seed: int
    checkpoint: Path | None = None
    fingerprint: str = ""  # a checkpoint is resumed only when this matches
    label: str = "train"
    on_record: Callable[[dict], None] | None = None  # called for every evaluation record
    # (net, images, labels) -> (loss, logits); None: cross-entropy of net(images)
    objective: Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
    input_stats: tuple[torch.Tensor, torch.Tensor] | None = None  # (mean, std); None: the training images'
    # (net, images, labels, mean, std) -> more fields of each evaluation record, on the test part
    extra_eval: Callable[[nn.Module, Images, torch.Tensor, torch.Tensor, torch.Tensor], dict] | None = None
    # optimiser steps per epoch; None: one pass over the training images. More than a pass takes
    # (the size study: every net the full-data net's steps) repeats the images, a fresh order each pass.
    steps_per_epoch: int | None = None


def _rng_state(device: torch.device, gen: torch.Generator) -> dict:
    state = {"cpu": torch.get_rng_state(), "batches": gen.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device, gen: torch.Generator) -> None:
    torch.set_rng_state(state["cpu"])
    gen.set_state(state["batches"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _try_resume(opts: FitOptions) -> dict | None:
    """The checkpoint of this very run (same fingerprint), or None."""
    if opts.checkpoint is None or not opts.checkpoint.is_file():
        return None
    state = torch.load(opts.checkpoint, map_location=opts.device, weights_only=True)
    if state.get("fingerprint") != opts.fingerprint:
        print(
            f"{opts.label}: its epoch checkpoint was made by other code, inputs, params or device; starting from scratch",
            file=sys.stderr,
        )
        return None
    return state


@dataclass
class _Loop:
    """Everything one fit works with, on the training device."""

    model: nn.Module
    cfg: TrainConfig
    opts: FitOptions
    optimizer: SGD
    gen: torch.Generator
    data: dict[str, torch.Tensor]  # train_x, train_y, test_x, test_y (and val_x, val_y)
    net: nn.Module  # the model as called: torch.compile'd when asked for
    mean: torch.Tensor
    std: torch.Tensor
    per_epoch: int
    test_unbalanced: bool = False  # its test classes hold different numbers of images: mean per-class accuracy too
    history: History = field(default_factory=History)

    @property
    def total(self) -> int:
        """The budget in optimiser steps (sgd.total_steps)."""
        return total_steps(self.cfg, self.per_epoch)

    @property
    def epochs(self) -> int:
        """Epochs to run: the last one partial when the budget is in iterations."""
        return -(-self.total // self.per_epoch)

    def lr_at(self, step: int) -> float:
        warmup = round(self.cfg.warmup_epochs * self.per_epoch)
        return lr_multiplier(step, self.total, warmup, self.cfg, self.per_epoch)


def _setup(model: nn.Module, task: TaskData, cfg: TrainConfig, groups: list[ParamGroup], opts: FitOptions) -> _Loop:
    device = opts.device
    torch.manual_seed(opts.seed)  # dropout draws from the global generator
    gen = torch.Generator(device=device)
    gen.manual_seed(opts.seed)  # batch order and augmentation
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model.to(device).to(memory_format=torch.channels_last)
    data, images = validation_part(task, cfg.val_fraction, opts.seed)
    data = {k: v if isinstance(v, ImageFiles) else v.to(device) for k, v in data.items()}  # files stay on disk
    mean, std = (
        (s.to(device) for s in opts.input_stats) if opts.input_stats else _stats(data["train_x"], opts.seed, device)
    )
    per_epoch = opts.steps_per_epoch or steps_per_epoch(len(data["train_x"]), cfg.batch_size)
    net = compiled(model) if cfg.compile else model
    loop = _Loop(model, cfg, opts, make_optimizer(groups, cfg), gen, data, net, mean, std, per_epoch)
    loop.test_unbalanced = unbalanced(task.test_y.cpu().numpy())
    loop.history.images = images
    return loop


def validation_part(task: TaskData, val_fraction: float, seed: int) -> tuple[dict, dict]:
    """The fit's images (train_x, train_y, test_x, test_y, and val_x, val_y when it validates),
    and their counts with where the validation part came from: the data set's own
    (data.val_folder) whenever it has one, else `val_fraction` of each class's training images."""
    data = {"train_x": task.train_x, "train_y": task.train_y, "test_x": task.test_x, "test_y": task.test_y}
    if task.val_y is not None:
        data |= {"val_x": task.val_x, "val_y": task.val_y}
        return data, {"train_images": len(task.train_y), "val_from": "val_folder", "val_images": len(task.val_y)}
    if val_fraction > 0:
        keep, val = stratified_holdout(task.train_y, val_fraction, seed)
        data |= {
            "train_x": task.train_x[keep],
            "train_y": task.train_y[keep],
            "val_x": task.train_x[val],
            "val_y": task.train_y[val],
        }
        return data, {"train_images": len(keep), "val_from": f"val_fraction {val_fraction:g}", "val_images": len(val)}
    return data, {"train_images": len(task.train_y)}


def _stats(x: Images, seed: int, device: torch.device, sample: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of the training images (of a seeded sample of image files)."""
    if isinstance(x, ImageFiles):
        pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:sample]
        return tuple(s.to(device) for s in channel_stats(x[pick].decode()))
    return channel_stats(x)


def _train_batches(loop: _Loop, epoch: int):
    """(uint8 images on the device, labels) of one epoch: index gathers from a device-side
    permutation with crop and flip on the device, or decoded files augmented by the workers."""
    x, y, cfg, device = loop.data["train_x"], loop.data["train_y"], loop.cfg, loop.opts.device
    if isinstance(x, ImageFiles):
        # seeded per epoch (shuffle and the workers' augmentation), so that a resumed run repeats it
        gen = torch.Generator().manual_seed(loop.opts.seed * 1000 + epoch)
        passes = (
            x.batches(cfg.batch_size, cfg.augment, gen, pin=device.type == "cuda") for _ in itertools.repeat(None)
        )
        for _, (xb, pos) in zip(range(loop.per_epoch), itertools.chain.from_iterable(passes)):
            yield xb.to(device, non_blocking=True), y[pos.to(device)]
        return
    passes = (train_batches(len(x), cfg.batch_size, loop.gen, device) for _ in itertools.repeat(None))
    for _, idx in zip(range(loop.per_epoch), itertools.chain.from_iterable(passes)):
        yield (random_crop_flip(x[idx], cfg.crop_padding, loop.gen) if cfg.augment else x[idx]), y[idx]


def _resume(loop: _Loop) -> int:
    """Restore the state of this run's checkpoint, if any; return the first epoch to run."""
    state = _try_resume(loop.opts)
    if state is None:
        return 0
    loop.model.load_state_dict(state["model"])
    loop.optimizer.load_state_dict(state["optimizer"])
    _set_rng_state(state["rng"], loop.opts.device, loop.gen)
    loop.history.records = list(state["history"])
    for record in loop.history.records:
        if loop.opts.on_record:
            loop.opts.on_record(record)
    return state["epoch"] + 1


def _save(loop: _Loop, epoch: int) -> None:
    """Checkpoint after an epoch (atomically), for resuming."""
    if loop.opts.checkpoint is None:
        return
    state = {
        "fingerprint": loop.opts.fingerprint,
        "epoch": epoch,
        "model": loop.model.state_dict(),
        "optimizer": loop.optimizer.state_dict(),
        "rng": _rng_state(loop.opts.device, loop.gen),
        "history": loop.history.records,
    }
    atomic_torch_save(state, loop.opts.checkpoint)


def _record(loop: _Loop, epoch: int, i: int, seen: int, correct: int, loss_sum: float, ips: float) -> dict:
    """Evaluate on the held-out set and log one history record."""
    d = loop.data
    record = {
        "epoch": epoch + (i + 1) / loop.per_epoch,
        "step": epoch * loop.per_epoch + i + 1,
        "train_loss": loss_sum / seen,
        "train_top1": correct / seen,
        "lr": loop.optimizer.param_groups[0]["lr"],
        "images_per_s": ips,
    }
    if loop.test_unbalanced:  # mean per-class accuracy beside top-1 (accuracy.py)
        record["test_top1"], record["test_mean_class_top1"] = evaluate_per_class(
            loop.net, d["test_x"], d["test_y"], loop.mean, loop.std
        )
    else:
        record["test_top1"] = evaluate(loop.net, d["test_x"], d["test_y"], loop.mean, loop.std)
    if "val_x" in d:
        record["val_top1"] = evaluate(loop.net, d["val_x"], d["val_y"], loop.mean, loop.std)
    if loop.opts.extra_eval:
        record |= loop.opts.extra_eval(loop.net, d["test_x"], d["test_y"], loop.mean, loop.std)
    loop.history.records.append(record)
    if loop.opts.on_record:
        loop.opts.on_record(record)
    return record


def _epoch(loop: _Loop, epoch: int, progress: RunProgress) -> None:
    """One pass over the training set: device-side batches, augmentation, SGD steps."""
    net, cfg, device = loop.net, loop.cfg, loop.opts.device
    eval_every = max(1, loop.per_epoch // cfg.evals_per_epoch)
    last = min(loop.per_epoch, loop.total - epoch * loop.per_epoch)  # steps in this epoch: fewer at the budget's end
    seen, correct, loss_sum, t0 = 0, 0, 0.0, time.perf_counter()
    for i, (xb, yb) in enumerate(_train_batches(loop, epoch)):
        if i == last:
            break
        xb = normalize(xb, loop.mean, loop.std)
        loop.optimizer.set_lr_multiplier(loop.lr_at(epoch * loop.per_epoch + i))
        with autocast(device):
            if loop.opts.objective is not None:
                loss, logits = loop.opts.objective(net, xb, yb)
            else:
                logits = net(xb)
                loss = nn.functional.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
        loop.optimizer.zero_grad()
        loss.backward()
        loop.optimizer.step()
        if loop.history.first_step_at is None:
            loop.history.first_step_at = time.time()
        seen += len(yb)
        correct += (logits.argmax(1) == yb).sum().item()
        loss_sum += loss.item() * len(yb)
        ips = seen / (time.perf_counter() - t0)
        progress.step(epoch, loss_sum / seen, correct / seen, ips)
        n_eval = (i + 1) // eval_every
        scheduled = (i + 1) % eval_every == 0 and (n_eval <= cfg.evals_per_epoch or i + 1 == loop.per_epoch)
        if scheduled or (last < loop.per_epoch and i + 1 == last):  # and at the end of the budget
            progress.evaluated(_record(loop, epoch, i, seen, correct, loss_sum, ips)["test_top1"])


def fit(model: nn.Module, task: TaskData, cfg: TrainConfig, groups: list[ParamGroup], opts: FitOptions) -> History:
    """Train `model` on `task` with SGD; evaluate on the task's test part; checkpoint each epoch."""
    loop = _setup(model, task, cfg, groups, opts)
    loop.history.input_stats = (loop.mean.cpu(), loop.std.cpu())
    start_epoch = loop.history.resumed_epochs = _resume(loop)
    model.train()
    started = time.perf_counter()
    with RunProgress(opts.label, loop.epochs, loop.per_epoch, start_epoch) as progress:
        for epoch in range(start_epoch, loop.epochs):
            if stalled(loop.history.records, cfg.patience):
                break  # (also when a resumed run had already stalled)
            _epoch(loop, epoch, progress)
            _save(loop, epoch)
    loop.history.train_seconds = time.perf_counter() - started
    return loop.history
