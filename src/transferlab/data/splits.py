"""Class splits into halves A and B: the paper's exact halves, random fractions, man-made vs
natural, explicit class lists, and two data sets (cross-data-set tasks)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from transferlab.config import SplitConfig
from transferlab.errors import InputError


@dataclass(frozen=True)
class Split:
    """Class indices (of the prepared data set) of halves A and B, and how they were made."""

    split_id: str
    method: str
    seed: int | None
    classes_a: list[int]
    classes_b: list[int]

    def half(self, name: str) -> list[int]:
        """Class indices of half "A" or "B"."""
        return {"A": self.classes_a, "B": self.classes_b}[name]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Split:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def yosinski2014_halves(num_classes: int, seed: int) -> Split:
    """The paper's halves, exactly its code: `np.random.seed([s])` (NumPy's legacy generator,
    a one-element list), `A = sorted(np.random.choice(np.arange(C), C // 2, replace=False))`,
    B the rest. For ImageNet, seeds 0..3 are the paper's splits 0..3."""
    if num_classes < 2:
        raise InputError(f"split {seed}: {num_classes} classes cannot be halved")
    rng = np.random.RandomState([seed])
    a = sorted(int(i) for i in rng.choice(np.arange(num_classes), num_classes // 2, replace=False))
    return Split(str(seed), "yosinski2014", seed, a, _rest(num_classes, a))


def random_split(num_classes: int, seed: int, fraction: float) -> Split:
    """Seeded random classes for A (round(fraction * C) of them), B the rest."""
    size_a = round(num_classes * fraction)
    if not 0 < fraction < 1 or not 1 <= size_a <= num_classes - 1:
        raise InputError(
            f"split.fraction: found {fraction}, allowed: a fraction in (0, 1) that leaves both halves of {num_classes} classes non-empty"
        )
    a = sorted(int(i) for i in np.random.default_rng([seed]).permutation(num_classes)[:size_a])
    return Split(str(seed), "random", seed, a, _rest(num_classes, a))


def _rest(num_classes: int, a: list[int]) -> list[int]:
    return sorted(set(range(num_classes)) - set(a))


def by_group(groups: list[str], split_id: str) -> Split:
    """Man-made vs natural: "mn" puts man-made classes in A, "nm" natural ones."""
    manmade = [i for i, g in enumerate(groups) if g == "manmade"]
    natural = [i for i, g in enumerate(groups) if g == "natural"]
    if not manmade or not natural:
        raise InputError(
            f"split {split_id}: the data set has no man-made/natural class hierarchy with both groups non-empty"
        )
    a, b = (manmade, natural) if split_id == "mn" else (natural, manmade)
    return Split(split_id, "manmade_natural", None, a, b)


def _class_index(classes: list[str], entry: str | int, key: str) -> int:
    if isinstance(entry, int):
        if not 0 <= entry < len(classes):
            raise InputError(f"{key}: found {entry}, allowed: class indices 0..{len(classes) - 1}")
        return entry
    if entry not in classes:
        raise InputError(f"{key}: found {entry!r}, not a class of the data set (e.g. {', '.join(classes[:4])})")
    return classes.index(entry)


def by_classes(classes: list[str], names_a: list, names_b: list) -> Split:
    """Explicit class lists (names or indices); B empty means every class not in A."""
    a = sorted({_class_index(classes, e, "split.classes_a") for e in names_a})
    b = sorted({_class_index(classes, e, "split.classes_b") for e in names_b}) if names_b else _rest(len(classes), a)
    both = set(a) & set(b)
    if both:
        raise InputError(
            f"split.classes_b: found {classes[min(both)]!r}, which is also in split.classes_a; a class cannot be in both halves"
        )
    if not a or not b:
        raise InputError(f"split.classes_{'a' if not a else 'b'}: found an empty half; both halves need classes")
    return Split("classes", "classes", None, a, b)


def by_source(sources: list[str]) -> Split:
    """Cross-data-set tasks: A = the first data set's classes, B = the second's."""
    names = list(dict.fromkeys(sources))
    if len(names) != 2:
        raise InputError(
            f"split cross: the prepared data set holds {len(names)} data sets, needs two (data.dataset and data.b_dataset)"
        )
    a = [i for i, s in enumerate(sources) if s == names[0]]
    return Split("cross", "cross", None, a, _rest(len(sources), a))


def make_split(
    split_id: int | str, classes: list[str], groups: list[str], sources: list[str], cfg: SplitConfig
) -> Split:
    """The split that a params.yaml split id names."""
    if isinstance(split_id, int) or str(split_id).isdigit():
        seed = int(split_id)
        return (
            yosinski2014_halves(len(classes), seed)
            if cfg.method == "yosinski2014"
            else random_split(len(classes), seed, cfg.fraction)
        )
    if split_id in ("mn", "nm"):
        return by_group(groups, split_id)
    if split_id == "classes":
        return by_classes(classes, cfg.classes_a, cfg.classes_b)
    if split_id == "cross":
        return by_source(sources)
    if split_id == "all":  # A = B = every class: for sources from outside the data set (pretrained)
        every = list(range(len(classes)))
        return Split("all", "all", None, every, every)
    raise InputError(f"unknown split id {split_id!r}: use a seed (0, 1, ...), 'mn', 'nm', 'classes', 'cross' or 'all'")
