"""Binary-partition auxiliary heads: does a harder problem on A give more transferable features?

Besides A's classifier, the net (A') learns to tell two random halves of A's classes apart,
one 2-way head per partition on the last transferable unit's features:

    loss = (1 - beta) * CE(y, classifier) + beta * mean_h CE(partition_h[y], head_h)

beta = 0 is the plain net on A; A' nets of all betas share the seed of their split and
replicate, so each beta's effect is a paired difference to its own beta = 0 control.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from transferlab.config import Params
from transferlab.data.stages import task_data
from transferlab.errors import InputError
from transferlab.harness import RunInfo, load_model, model_options, train_run
from transferlab.models import create_model
from transferlab.models.layered import LayeredNet
from transferlab.runs import HEADS_SEED, BinaryRun, Layout, RunSpec, seed_of
from transferlab.train import History, ParamGroup, evaluate
from transferlab.transfer import build_treatment, param_groups


def partitions(num_classes: int, heads: int, seed: int, equal_halves: bool = True) -> torch.Tensor:
    """(heads, num_classes) int64: y_b = partition[h, y], 0 for classes in c0, 1 for c1.

    Each head's halves come from a permutation seeded by (seed, h); with an odd class count
    c0 gets the extra class, unless equal halves are required."""
    if equal_halves and num_classes % 2:
        raise InputError(
            f"binary.equal_halves: found true, allowed: false, or an even class count in A ({num_classes} classes cannot be halved)"
        )
    if num_classes < 2:
        raise InputError(f"binary: A has {num_classes} class, a partition needs at least 2")
    table = np.zeros((heads, num_classes), dtype=np.int64)
    for h in range(heads):
        perm = np.random.default_rng([seed, h]).permutation(num_classes)
        table[h, perm[(num_classes + 1) // 2 :]] = 1
    return torch.from_numpy(table)


def classifier_layer(head: nn.Module) -> nn.Linear:
    """The task head's final linear layer: the classifier proper."""
    return [m for m in head.modules() if isinstance(m, nn.Linear)][-1]


def head_with_input(head: nn.Module, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the features the classifier layer reads, the logits) of the task head on the last
    unit's output `f`: whatever the head does before its linear layer (WRN's and DenseNet's
    final BN-ReLU, pooling, dropout) is done once, and the binary heads read the same features."""
    seen: list[torch.Tensor] = []
    hook = classifier_layer(head).register_forward_pre_hook(lambda _module, args: seen.append(args[0]))
    try:
        logits = head(f)
    finally:
        hook.remove()
    return seen[0], logits


class _ClassifierInput(nn.Module):
    """The task head up to its classifier layer, as a module (for evaluating a binary head)."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return head_with_input(self.head, f)[0]


class BinaryHeadsNet(nn.Module):
    """A LayeredNet (`body`) plus binary heads beside its classifier: each head is a linear layer
    on exactly the classifier's input features. Calling it gives the classifier's logits, so
    evaluation on A is the plain net's; `loss` adds the heads."""

    def __init__(self, body: LayeredNet, partition_table: torch.Tensor) -> None:
        super().__init__()
        self.body = body
        self.register_buffer("partition_table", partition_table)
        width = classifier_layer(body.head).in_features
        self.heads = nn.ModuleList(nn.Linear(width, 2) for _ in range(len(partition_table)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def head_view(self, h: int) -> nn.Module:
        """A module whose output is binary head h's logits (for evaluating it like a net)."""
        return nn.Sequential(*self.body.layers, _ClassifierInput(self.body.head), self.heads[h])

    def loss(
        self, x: torch.Tensor, y: torch.Tensor, beta: float, label_smoothing: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the study's loss, the classifier's logits) of a batch."""
        f = x
        for layer in self.body.layers:
            f = layer(f)
        features, logits = head_with_input(self.body.head, f)
        ce = nn.functional.cross_entropy(logits, y, label_smoothing=label_smoothing)
        y_b = self.partition_table[:, y]  # (heads, N)
        binary = torch.stack(
            [nn.functional.cross_entropy(head(features), y_b[h]) for h, head in enumerate(self.heads)]
        ).mean()
        return (1 - beta) * ce + beta * binary, logits


def objective(beta: float, label_smoothing: float):
    """The trainer's loss hook for an A' net."""

    def compute(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return net.loss(x, y, beta, label_smoothing)

    return compute


def heads_accuracy(net: nn.Module, x, y: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> dict:
    """The binary heads' own test top-1 (mean over heads), each on its partition's labels: the
    trainer's `extra_eval` for A' nets (the study followed their error beside the classifier's)."""
    net = getattr(net, "_orig_mod", net)  # (torch.compile)
    table = net.partition_table
    accuracies = [evaluate(net.head_view(h), x, table[h][y], mean, std) for h in range(len(net.heads))]
    return {"binary_test_top1": sum(accuracies) / len(accuracies)}


def train_a_prime(params: Params, run: BinaryRun, layout: Layout, device: torch.device) -> History:
    """Train an A' net: A's classifier plus binary heads, loss weight beta on the heads.

    Seeded like the base net on A of the same split and replicate, so that beta = 0 is that
    net exactly and every beta shares its initialisation and batch order (paired runs)."""
    cfg = params.binary
    task = task_data(layout, run.split, "A", params.data.workers)
    seed = RunSpec(run.split, "A", replicate=run.replicate).seed(params.seed)
    torch.manual_seed(seed)
    body = create_model(params.model.name, task.num_classes, **model_options(params))
    net = BinaryHeadsNet(body, partitions(task.num_classes, run.heads, run.partition_seed, cfg.equal_halves))
    train = params.training("base")  # as baseA's: beta = 0 is that net
    groups = [
        *param_groups(body, 0, 1.0, train.layer_lr_factors),
        ParamGroup(list(net.heads.parameters()), 1.0, "binary heads"),
    ]
    fields = {
        "split": run.split,
        "treatment": "binaryA",
        "beta": run.beta,
        "heads": run.heads,
        "partition_seed": run.partition_seed,
        "replicate": run.replicate,
        "target": "A",
    }
    info = RunInfo(run, seed, train, fields)
    return train_run(
        params,
        info,
        layout,
        task,
        net,
        groups,
        device,
        objective(run.beta, train.label_smoothing),
        extra_eval=heads_accuracy,
    )


def finetune_on_b(params: Params, run: BinaryRun, layout: Layout, device: torch.device) -> History:
    """Fine-tune an A' net on B: its units copied (binary heads left behind), the first
    `frozen` units frozen, the rest at `body_lr_factor`, a new classifier at the full rate."""
    cfg = params.binary
    task = task_data(layout, run.split, "B", params.data.workers)
    seed = seed_of(
        params.seed, HEADS_SEED.format(split=run.split, frozen=run.frozen, replicate=run.replicate)
    )  # shared by all betas and partitions
    torch.manual_seed(seed)
    model = create_model(params.model.name, task.num_classes, **model_options(params))
    build_treatment(model, model.depth, load_model(layout.model(run.source)), finetune=True)
    model.freeze(range(run.frozen))
    train = params.training("binary")
    groups = param_groups(model, model.depth, cfg.body_lr_factor, train.layer_lr_factors)
    fields = {
        "split": run.split,
        "treatment": "binaryB",
        "beta": run.beta,
        "heads": run.heads,
        "partition_seed": run.partition_seed,
        "frozen": run.frozen,
        "replicate": run.replicate,
        "target": "B",
    }
    return train_run(params, RunInfo(run, seed, train, fields), layout, task, model, groups, device)
