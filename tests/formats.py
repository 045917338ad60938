"""Writers of tiny data sets in their real on-disk formats (no network in tests).

Each image's pixels encode its label (a constant grey level plus noise), so a loader
that mixes up images and labels shows in the tests."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from transferlab.data.sources import cifar100_groups


def _images(labels: np.ndarray, size: int, channels: int, seed: int) -> np.ndarray:
    """(N, H, W, C) uint8: the label's grey level (label * 20 + 10) with small noise."""
    rng = np.random.default_rng(seed)
    base = (labels.astype(np.int32) * 20 + 10)[:, None, None, None]
    return np.clip(base + rng.integers(-3, 4, (len(labels), size, size, channels)), 0, 255).astype(np.uint8)


def _labels(classes: int, per_class: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(classes), per_class))


def label_of(x) -> np.ndarray:
    """Inverse of the encoding: the label each uint8 (N, C, H, W) image carries."""
    return np.rint((np.asarray(x, dtype=np.float64).mean(axis=(1, 2, 3)) - 10) / 20).astype(np.int64)


def write_cifar(root: Path, name: str, per_class: int = 3) -> list[str]:
    """CIFAR-10 or CIFAR-100 "python version": pickled dicts of flattened CHW rows."""
    if name == "cifar10":
        folder, classes = (
            root / "cifar-10-batches-py",
            ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
        )
        files = {f"data_batch_{i}": "labels" for i in range(1, 6)} | {"test_batch": "labels"}
        meta_file, meta_key = "batches.meta", "label_names"
    else:
        folder, classes = root / "cifar-100-python", sorted(cifar100_groups())
        files = {"train": "fine_labels", "test": "fine_labels"}
        meta_file, meta_key = "meta", "fine_label_names"
    folder.mkdir(parents=True, exist_ok=True)
    for i, (file, key) in enumerate(files.items()):
        y = _labels(min(len(classes), 12), per_class, i)  # labels above 11 would not fit the grey encoding
        x = _images(y, 32, 3, i).transpose(0, 3, 1, 2).reshape(len(y), -1)
        with open(folder / file, "wb") as f:
            pickle.dump({"data": x, key: y.tolist(), "batch_label": file}, f)
    with open(folder / meta_file, "wb") as f:
        pickle.dump({meta_key: classes}, f)
    return classes


def write_svhn(root: Path, per_class: int = 3) -> None:
    """SVHN cropped digits: MATLAB files with X (32, 32, 3, N) and y (N, 1), digit 0 as 10."""
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(("train", "test")):
        y = _labels(10, per_class, i)
        x = _images(y, 32, 3, i).transpose(1, 2, 3, 0)
        savemat(root / f"{part}_32x32.mat", {"X": x, "y": np.where(y == 0, 10, y).reshape(-1, 1).astype(np.uint8)})


def write_mnist(root: Path, folder: str = "MNIST", per_class: int = 3) -> None:
    """MNIST / Fashion-MNIST idx files (big-endian headers), uncompressed, in <folder>/raw."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for i, prefix in enumerate(("train", "t10k")):
        y = _labels(10, per_class, i)
        x = _images(y, 28, 1, i)[..., 0]
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, len(y), 28, 28) + x.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 0x801, len(y)) + y.astype(np.uint8).tobytes()
        )


def write_image_folder(
    root: Path,
    classes: list[str],
    per_class: int,
    size: tuple[int, int] = (40, 30),
    parts: tuple[str, ...] = ("train", "val"),
) -> None:
    """A class-folder tree of PNG and JPEG files (non-square, so resizing and cropping show)."""
    for p, part in enumerate(parts):
        for label, name in enumerate(classes):
            d = (root / part if part else root) / name
            d.mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                pixels = _images(np.array([label]), max(size), 3, p * 1000 + label * 10 + k)[0][: size[1], : size[0]]
                ext = "png" if k % 2 == 0 else "JPEG"
                Image.fromarray(pixels).save(d / f"img{k}.{ext}", quality=95)


def write_arrays(folder: Path, classes: int = 3, per_class: int = 6, parts=("train", "val", "test"), floats=False):
    """Image arrays as the MobileNet study kept its frames: <part>_images.npy (N x H x W x C,
    uint8, or float 0..1 with `floats`) and <part>_labels.npy (N integers)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(parts):
        y = _labels(classes, per_class, i)
        x = _images(y, 24, 3, i)
        np.save(folder / f"{part}_images.npy", x.astype(np.float32) / 255 if floats else x)
        np.save(folder / f"{part}_labels.npy", y.astype(np.int64))


def write_caltech101(
    root: Path, classes: list[str], per_class: int | list[int], size: tuple[int, int] = (44, 30)
) -> Path:
    """Caltech-101 as torchvision unpacks it under data.root: caltech101/101_ObjectCategories/
    <class>/image_0001.jpg ..., grey and colour JPEGs of varying size, and the clutter folder
    BACKGROUND_Google, which is no class. `per_class`: one count, or one per class."""
    folder = root / "caltech101" / "101_ObjectCategories"
    counts = per_class if isinstance(per_class, list) else [per_class] * len(classes)
    for label, (name, count) in enumerate(zip(["BACKGROUND_Google", *classes], [2, *counts])):
        d = folder / name
        d.mkdir(parents=True, exist_ok=True)
        for k in range(count):
            pixels = _images(np.array([label]), max(size), 3, label * 100 + k)[0][: size[1] + k % 3, : size[0]]
            image = Image.fromarray(pixels)
            (image.convert("L") if k % 4 == 3 else image).save(d / f"image_{k + 1:04d}.jpg", quality=95)
    return folder


def write_hub_download(hub: Path, repo: str, state: dict) -> Path:
    """A state dict as the Hugging Face hub's cache lays out a download of `repo` (e.g.
    timm/resnet10t.c3_in1k): snapshots/<revision>/model.safetensors linked to blobs/<its
    SHA-256>. Returns the blob."""
    import hashlib

    from safetensors.torch import save_file

    folder = hub / f"models--{repo.replace('/', '--')}"
    (folder / "blobs").mkdir(parents=True)
    staged = folder / "staged.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(staged))
    blob = folder / "blobs" / hashlib.sha256(staged.read_bytes()).hexdigest()
    staged.rename(blob)
    snapshot = folder / "snapshots/0123abcd/model.safetensors"
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(f"../../blobs/{blob.name}")
    return blob
