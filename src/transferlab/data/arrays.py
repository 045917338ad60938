"""Image arrays as a data set (`data.dataset: arrays`): NumPy files of frames and their labels,
with their own train, val and test parts, as the MobileNet study kept its lane frames.

In `data.image_folder`: `<part>_images.npy` (N x H x W x C, uint8 0..255 or float 0..1, C = 1
or 3) and `<part>_labels.npy` (N integers 0..K-1) for part train, test and (optional) val;
`classes.txt` (one name per line) names the K classes, else they are "0".."K-1" for the
largest training label K-1. Every file
is checked when `prepare` reads it: one line naming the file and what is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from transferlab.errors import InputError

PARTS = ("train", "val", "test")


def array_files(folder: Path, part: str) -> tuple[Path, Path]:
    return folder / f"{part}_images.npy", folder / f"{part}_labels.npy"


def class_names(folder: Path, train_labels: np.ndarray) -> list[str]:
    """classes.txt's names, else "0".."K-1" for the largest training label K-1."""
    listed = folder / "classes.txt"
    if listed.is_file():
        names = [line.strip() for line in listed.read_text().splitlines() if line.strip()]
        if len(set(names)) != len(names) or len(names) < 2:
            raise InputError(f"{listed}: needs at least 2 distinct class names, one per line")
        return names
    return [str(k) for k in range(int(train_labels.max(initial=1)) + 1)]


def _load(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"arrays: {path} is missing (each part needs <part>_images.npy and <part>_labels.npy)")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)  # never unpickle a data file
    except ValueError as err:
        raise InputError(f"arrays: {path} is not a plain NumPy array file ({err})") from None


def _images(path: Path) -> torch.Tensor:
    """uint8 (N, C, H, W) from N x H x W x C uint8 (0..255) or float (0..1)."""
    x = _load(path)
    if x.ndim != 4 or x.shape[3] not in (1, 3):
        raise InputError(f"arrays: {path} has shape {x.shape}; expected N x H x W x C with C = 1 or 3")
    if x.dtype == np.uint8:
        out = np.array(x)  # read into memory (writable), from the memory map
    elif np.issubdtype(x.dtype, np.floating):
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            raise InputError(f"arrays: {path} holds floats from {lo:g} to {hi:g}; expected 0..1 (or uint8 0..255)")
        out = np.rint(np.asarray(x) * 255).astype(np.uint8)
    else:
        raise InputError(f"arrays: {path} has dtype {x.dtype}; expected uint8 (0..255) or float (0..1)")
    t = torch.from_numpy(np.ascontiguousarray(out)).permute(0, 3, 1, 2)
    return t.expand(-1, 3, -1, -1).contiguous() if t.shape[1] == 1 else t.contiguous()


def _labels(path: Path, count: int) -> np.ndarray:
    y = _load(path)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"arrays: {path} has shape {y.shape} and dtype {y.dtype}; expected N integers")
    if len(y) != count:
        raise InputError(f"arrays: {path} holds {len(y)} labels for {count} images")
    return np.array(y, dtype=np.int64)  # into memory, from the memory map


def load_arrays(folder: Path, with_val: bool) -> tuple[list[str], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """The class names and each part's uint8 (N, C, H, W) images and int64 labels: train and
    test, and val with `with_val` (data.val_folder)."""
    if not folder.is_dir():
        raise InputError(f"arrays: data.image_folder {folder} is not a folder of <part>_images.npy / _labels.npy files")
    parts = {}
    for part in PARTS if with_val else ("train", "test"):
        images, labels = array_files(folder, part)
        x = _images(images)
        parts[part] = (x, _labels(labels, len(x)))
    classes = class_names(folder, parts["train"][1])
    for part, (_, y) in parts.items():
        if len(y) and (y.min() < 0 or y.max() >= len(classes)):
            raise InputError(
                f"arrays: {array_files(folder, part)[1]} has labels {y.min()}..{y.max()};"
                f" expected 0..{len(classes) - 1} ({len(classes)} classes)"
            )
    return classes, {part: (x, torch.from_numpy(y)) for part, (x, y) in parts.items()}
