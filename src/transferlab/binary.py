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

from transferlab.errors import InputError
from transferlab.models.layered import LayeredNet


def partitions(num_classes: int, heads: int, seed: int, equal_halves: bool = True) -> torch.Tensor:
    """(heads, num_classes) int64: y_b = partition[h, y], 0 for classes in c0, 1 for c1.

    Each head's halves come from a permutation seeded by (seed, h); with an odd class count
    c0 gets the extra class, unless equal halves are required."""
    if equal_halves and num_classes % 2:
        raise InputError(f"binary.equal_halves: found true, allowed: false, or an even class count in A ({num_classes} classes cannot be halved)")
    if num_classes < 2:
        raise InputError(f"binary: A has {num_classes} class, a partition needs at least 2")
    table = np.zeros((heads, num_classes), dtype=np.int64)
    for h in range(heads):
        perm = np.random.default_rng([seed, h]).permutation(num_classes)
        table[h, perm[(num_classes + 1) // 2 :]] = 1
    return torch.from_numpy(table)


class _GlobalPool(nn.Module):
    """Average over space when the features are maps; pass vectors through."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) if x.dim() == 4 else x.flatten(1)


class BinaryHeadsNet(nn.Module):
    """A LayeredNet (`body`) plus binary heads on its last unit. Calling it gives the
    classifier's logits, so evaluation on A is the plain net's; `loss` adds the heads."""

    def __init__(self, body: LayeredNet, partition_table: torch.Tensor) -> None:
        super().__init__()
        self.body = body
        self.register_buffer("partition_table", partition_table)
        self.heads = nn.ModuleList(nn.Sequential(_GlobalPool(), nn.Linear(body.widths[-1], 2)) for _ in range(len(partition_table)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def loss(self, x: torch.Tensor, y: torch.Tensor, beta: float, label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """(the study's loss, the classifier's logits) of a batch."""
        f = x
        for layer in self.body.layers:
            f = layer(f)
        logits = self.body.head(f)
        ce = nn.functional.cross_entropy(logits, y, label_smoothing=label_smoothing)
        y_b = self.partition_table[:, y]  # (heads, N)
        binary = torch.stack([nn.functional.cross_entropy(head(f), y_b[h]) for h, head in enumerate(self.heads)]).mean()
        return (1 - beta) * ce + beta * binary, logits


def objective(beta: float, label_smoothing: float):
    """The trainer's loss hook for an A' net."""

    def compute(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return net.loss(x, y, beta, label_smoothing)

    return compute
