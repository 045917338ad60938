"""LayeredNet: a network as an ordered list of transferable layers plus a task head."""

from __future__ import annotations

import torch
from torch import nn


class LayeredNet(nn.Module):
    """`layers[i]` is the whole of the paper's layer i+1; `head` is never transferred.

    `frozen` holds the indices of layers that are frozen: their parameters do not get
    gradients and their BatchNorm statistics stay fixed, because `train()` keeps them in
    eval mode (requires_grad alone would let running statistics drift).
    """

    def __init__(self, layers: list[nn.Module], head: nn.Module, unit_names: list[str], widths: list[int]) -> None:
        super().__init__()
        if not len(layers) == len(unit_names) == len(widths):
            raise ValueError("layers, unit_names and widths must have one entry per layer")
        self.layers = nn.ModuleList(layers)
        self.head = head
        self.unit_names = list(unit_names)
        self.widths = list(widths)  # output channels / features of each layer
        self.frozen: set[int] = set()

    @property
    def depth(self) -> int:
        """Number of transferable layers (the valid n are 1..depth)."""
        return len(self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.head(x)

    def freeze(self, indices: range | list[int]) -> None:
        """Freeze layers: no gradients, BatchNorm statistics fixed."""
        for i in indices:
            self.layers[i].requires_grad_(False)
            self.layers[i].eval()
            self.frozen.add(i)

    def train(self, mode: bool = True) -> LayeredNet:
        super().train(mode)
        for i in self.frozen:
            self.layers[i].eval()
        return self


def pooled(h: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) feature maps averaged over space to (N, C); vectors flattened to (N, C)."""
    return h.mean(dim=(2, 3)) if h.dim() == 4 else h.flatten(1)


class GlobalPool(nn.Module):
    """`pooled` as a module: the first part of every new head on a unit's features."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pooled(x)
