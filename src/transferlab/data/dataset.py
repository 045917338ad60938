"""A prepared data set: uint8 image tensors plus class names and their groups."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from transferlab.config import DataConfig
from transferlab.data import synthetic


@dataclass(frozen=True)
class PreparedDataset:
    """Train and test images as uint8 NCHW tensors with int64 labels 0..C-1."""

    name: str
    classes: list[str]
    groups: list[str]  # per class: "manmade" or "natural"
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    def to_dict(self) -> dict:
        """Plain dict of tensors, strings and lists (loadable with weights_only=True)."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> "PreparedDataset":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def prepare_synthetic(cfg: DataConfig) -> PreparedDataset:
    """Generate the embedded synthetic data set described by `cfg`."""
    recipes = synthetic.class_recipes(cfg.num_classes, cfg.seed)
    train = synthetic.generate(cfg.num_classes, cfg.train_per_class, cfg.image_size, cfg.seed, "train")
    test = synthetic.generate(cfg.num_classes, cfg.test_per_class, cfg.image_size, cfg.seed, "test")
    return PreparedDataset(
        name="synthetic",
        classes=[r.name for r in recipes],
        groups=[r.group for r in recipes],
        train_x=torch.from_numpy(train.x),
        train_y=torch.from_numpy(train.y),
        test_x=torch.from_numpy(test.x),
        test_y=torch.from_numpy(test.y),
    )


@dataclass(frozen=True)
class TaskData:
    """One task (a half of a split): images of its classes, labels re-indexed 0..k-1."""

    classes: list[str]
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def select_classes(ds: PreparedDataset, class_indices: list[int]) -> TaskData:
    """The task of the given classes; label i is class_indices[i] (sorted order kept)."""
    lookup = torch.full((len(ds.classes),), -1, dtype=torch.int64)
    lookup[torch.tensor(class_indices)] = torch.arange(len(class_indices))

    def pick(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = lookup[y] >= 0
        return x[keep], lookup[y[keep]]

    train_x, train_y = pick(ds.train_x, ds.train_y)
    test_x, test_y = pick(ds.test_x, ds.test_y)
    return TaskData([ds.classes[i] for i in class_indices], train_x, train_y, test_x, test_y)


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
