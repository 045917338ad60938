"""Seeded per-class sampling: subsets of k images per class and stratified hold-outs.

A leaf module: the data set code (dataset.py) and the readers of original files (sources.py)
both use it, so neither imports the other for it."""

from __future__ import annotations

import torch


def per_class_subset(y: torch.Tensor, k: int | None, seed: int) -> torch.Tensor:
    """Sorted indices of at most k images per class, by a seeded permutation of each class.
    Subsets for growing k are nested: each keeps the first k of the same permutation."""
    if k is None:
        return torch.arange(len(y))
    gen = torch.Generator().manual_seed(seed)
    picked = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        picked.append(idx[torch.randperm(len(idx), generator=gen)][:k])
    return torch.sort(torch.cat(picked)).values


def stratified_holdout(y: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (keep, held_out): `fraction` of each class's images held out (at least one,
    never all), chosen by a seeded permutation."""
    gen = torch.Generator().manual_seed(seed)
    keep, held = [], []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        k = min(len(idx) - 1, max(1, round(fraction * len(idx))))
        held.append(idx[:k])
        keep.append(idx[k:])
    return torch.sort(torch.cat(keep)).values, torch.sort(torch.cat(held)).values


def train_count_split(y: torch.Tensor, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, test): k images of each class for training (the first k of a seeded
    permutation, as per_class_subset picks them), the rest for testing."""
    train = per_class_subset(y, k, seed)
    held = torch.ones(len(y), dtype=torch.bool)
    held[train] = False
    return train, torch.nonzero(held).flatten()
