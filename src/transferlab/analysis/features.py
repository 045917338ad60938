"""Activations of every unit of a LayeredNet, in batches under inference mode: conv maps
global-average pooled, fc activations as they are."""

from __future__ import annotations

import numpy as np
import torch

from transferlab.data.batches import normalize
from transferlab.models.layered import LayeredNet, pooled


@torch.inference_mode()
def unit_features(
    model: LayeredNet,
    x: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    device: torch.device,
    batch_size: int = 500,
    logits: bool = False,
) -> list[np.ndarray]:
    """Per unit (index n - 1), float32 features (N, width) of uint8 images x; with `logits`, the
    net's own classifier outputs last (for LEEP with the source head), from the same pass."""
    model.eval().to(device)
    out: list[list[torch.Tensor]] = [[] for _ in range(model.depth + logits)]
    for start in range(0, len(x), batch_size):
        h = normalize(x[start : start + batch_size].to(device), mean.to(device), std.to(device))
        for i, layer in enumerate(model.layers):
            h = layer(h)
            out[i].append(pooled(h).float().cpu())
        if logits:
            out[-1].append(model.head(h).float().cpu())
    return [torch.cat(parts).numpy() for parts in out]
