"""Class splits into halves A and B: the paper's random halves and man-made vs natural."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


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
    def from_dict(cls, d: dict) -> "Split":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def random_halves(num_classes: int, seed: int, fraction: float = 0.5) -> Split:
    """The paper's random halves: NumPy's legacy generator seeded with [seed].

    With fraction 0.5 this is exactly Yosinski et al.'s code: `np.random.seed([s])`, then
    `A = sorted(np.random.choice(np.arange(C), C // 2, replace=False))`, B the rest.
    """
    size_a = num_classes // 2 if fraction == 0.5 else round(num_classes * fraction)
    if not 1 <= size_a <= num_classes - 1:
        raise ValueError(f"fraction {fraction} leaves a half of {num_classes} classes empty")
    rng = np.random.RandomState([seed])
    a = sorted(int(i) for i in rng.choice(np.arange(num_classes), size_a, replace=False))
    b = sorted(set(range(num_classes)) - set(a))
    return Split(str(seed), "random", seed, a, b)


def by_group(groups: list[str], split_id: str) -> Split:
    """Man-made vs natural: "mn" puts man-made classes in A, "nm" natural ones."""
    manmade = [i for i, g in enumerate(groups) if g == "manmade"]
    natural = [i for i, g in enumerate(groups) if g == "natural"]
    if not manmade or not natural:
        raise ValueError("the data set has no man-made/natural class hierarchy with both groups non-empty")
    a, b = (manmade, natural) if split_id == "mn" else (natural, manmade)
    return Split(split_id, "manmade_natural", None, a, b)


def make_split(split_id: int | str, groups: list[str], fraction: float) -> Split:
    """The split that a params.yaml split id names."""
    if isinstance(split_id, int) or str(split_id).isdigit():
        return random_halves(len(groups), int(split_id), fraction)
    if split_id in ("mn", "nm"):
        return by_group(groups, split_id)
    raise ValueError(f"unknown split id {split_id!r}: use a seed (0, 1, ...), 'mn' or 'nm'")
