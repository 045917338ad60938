"""The embedded data set: procedurally generated RGB images, deterministic by seed.

Half of the classes are "man-made" (regular, geometric patterns: stripes, checkers, rings,
polygons, grids) and half "natural" (irregular, organic ones: blobs, clouds, spots, waves,
cracks). Classes of one family differ in frequency, scale and palette, so telling them apart
needs more than the first layer; all share low-level structure (edges, colour contrasts,
textures, sensor noise), so early layers have something general to learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MANMADE_FAMILIES = ("stripes", "checker", "rings", "polygon", "grid")
NATURAL_FAMILIES = ("blobs", "clouds", "spots", "waves", "cracks")


@dataclass(frozen=True)
class ClassRecipe:
    """What makes one class: a pattern family, its parameters and a palette."""

    name: str
    group: str  # "manmade" or "natural"
    family: str
    freq: float  # cycles per image (or blob count / noise scale, by family)
    angle: float  # radians
    sides: int  # polygon sides
    fg: np.ndarray  # (3,) colour in [0, 1]
    bg: np.ndarray  # (3,)


def class_recipes(num_classes: int, seed: int) -> list[ClassRecipe]:
    """One recipe per class: the first ceil(C/2) man-made, the rest natural."""
    n_manmade = (num_classes + 1) // 2
    recipes = []
    for c in range(num_classes):
        rng = np.random.default_rng([seed, c])
        group, families, k = (
            ("manmade", MANMADE_FAMILIES, c) if c < n_manmade else ("natural", NATURAL_FAMILIES, c - n_manmade)
        )
        family = families[k % len(families)]
        variant = k // len(families)
        recipes.append(
            ClassRecipe(
                name=f"{family}{variant}",
                group=group,
                family=family,
                freq=float(rng.uniform(2.0, 3.0) * 1.4 ** (variant % 4)),
                angle=float(rng.uniform(0, np.pi)),
                sides=3 + (variant % 4),
                fg=rng.uniform(0.1, 0.9, 3),
                bg=rng.uniform(0.1, 0.9, 3),
            )
        )
    return recipes


def _smooth_noise(rng: np.random.Generator, n: int, size: int, cells: int) -> np.ndarray:
    """(n, size, size) noise with about `cells` features per side (bilinear upsampling)."""
    cells = max(2, int(cells))
    grid = rng.standard_normal((n, cells + 1, cells + 1)).astype(np.float32)
    t = np.linspace(0, cells, size, dtype=np.float32)
    i0 = np.minimum(t.astype(int), cells - 1)
    f = t - i0
    rows = grid[:, i0] * (1 - f)[None, :, None] + grid[:, i0 + 1] * f[None, :, None]
    return rows[:, :, i0] * (1 - f)[None, None, :] + rows[:, :, i0 + 1] * f[None, None, :]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _pattern(r: ClassRecipe, rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """(n, size, size) foreground mask in [0, 1] for n images of class r."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5  # image coordinates in [-0.5, 0.5)
    jit = lambda lo, hi: rng.uniform(lo, hi, (n, 1, 1)).astype(np.float32)  # noqa: E731
    angle = r.angle + jit(-0.25, 0.25)
    freq = r.freq * jit(0.85, 1.15)
    phase = jit(0, 2 * np.pi)
    cx, cy = jit(-0.15, 0.15), jit(-0.15, 0.15)
    u = x * np.cos(angle) + y * np.sin(angle)
    v = -x * np.sin(angle) + y * np.cos(angle)
    sharp = 6.0
    if r.family == "stripes":
        return _sigmoid(sharp * np.sin(2 * np.pi * freq * u + phase))
    if r.family == "checker":
        return _sigmoid(sharp * np.sin(2 * np.pi * freq * u + phase) * np.sin(2 * np.pi * freq * v))
    if r.family == "rings":
        rad = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        return _sigmoid(sharp * np.sin(2 * np.pi * freq * rad + phase))
    if r.family == "polygon":
        theta = np.arctan2(y - cy, x - cx) - angle
        rad = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        sector = 2 * np.pi / r.sides
        edge = np.cos(np.pi / r.sides) / np.cos(np.mod(theta, sector) - sector / 2)
        radius = 0.12 + 0.05 * r.freq / 3 * jit(0.8, 1.2)
        return _sigmoid(40 * (radius * edge - rad))
    if r.family == "grid":
        lines = np.maximum(np.cos(2 * np.pi * freq * u + phase), np.cos(2 * np.pi * freq * v))
        return _sigmoid(12 * (lines - 0.8))
    if r.family == "blobs":
        count = int(2 + r.freq)
        out = np.zeros((n, size, size), np.float32)
        for _ in range(count):
            bx, by, s = jit(-0.4, 0.4), jit(-0.4, 0.4), jit(0.05, 0.12) * 3 / r.freq
            out += np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * s**2))
        return np.clip(out, 0, 1)
    if r.family == "clouds":
        return _sigmoid(2.5 * _smooth_noise(rng, n, size, r.freq))
    if r.family == "spots":
        return _sigmoid(8 * (_smooth_noise(rng, n, size, 2 * r.freq) - 1.0))
    if r.family == "waves":
        warp = 0.08 * _smooth_noise(rng, n, size, 3)
        return _sigmoid(sharp * np.sin(2 * np.pi * freq * (u + warp) + phase))
    if r.family == "cracks":
        return np.exp(-(_smooth_noise(rng, n, size, r.freq) ** 2) / 0.02)
    raise ValueError(f"unknown pattern family {r.family!r}")


def render_class(r: ClassRecipe, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, size, size) uint8 images of one class."""
    mask = _pattern(r, rng, n, size)[:, None]  # (n, 1, H, W)
    # Half of the images take random colours, so that a class cannot be told by colour alone.
    own = rng.random((n, 1)) < 0.5
    fg = np.where(own, r.fg[None, :], rng.uniform(0.1, 0.9, (n, 3))) + rng.normal(0, 0.08, (n, 3))
    bg = np.where(own, r.bg[None, :], rng.uniform(0.1, 0.9, (n, 3))) + rng.normal(0, 0.08, (n, 3))
    fg, bg = (np.clip(c, 0, 1)[:, :, None, None] for c in (fg, bg))
    shade = 1 + 0.3 * _smooth_noise(rng, n, size, 2)[:, None]  # uneven lighting, shared by all classes
    img = (bg * (1 - mask) + fg * mask) * shade + rng.normal(0, 0.06, (n, 3, size, size))
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


@dataclass(frozen=True)
class ImageSet:
    """A labelled image set as arrays: x (N, 3, H, W) uint8, y (N,) int64."""

    x: np.ndarray
    y: np.ndarray


def generate(num_classes: int, per_class: int, size: int, seed: int, part: str) -> ImageSet:
    """All images of one part ("train" or "test"), class by class, deterministic by seed."""
    part_key = {"train": 0, "test": 1}[part]
    xs, ys = [], []
    for c, recipe in enumerate(class_recipes(num_classes, seed)):
        rng = np.random.default_rng([seed, c, part_key, 1])
        xs.append(render_class(recipe, per_class, size, rng))
        ys.append(np.full(per_class, c, np.int64))
    return ImageSet(np.concatenate(xs), np.concatenate(ys))
