"""Real data sets, read from their original files into uint8 NCHW tensors.

Small-image sets go through torchvision's own classes, from the original files that the
download stage fetched or checked (data/download.py); folder sets (ImageNet, any class-folder tree) are
decoded once by worker processes, resized and centre-cropped to `image_size`.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from transferlab.config import DataConfig
from transferlab.data.arrays import load_arrays
from transferlab.data.files import ImageFiles, list_files
from transferlab.data.originals import (
    CALTECH101_FOLDER,
    CALTECH101_TRAIN_PER_CLASS,
    caltech101_classes,
    copy_hint,
    original_files,
    torchvision_class,
    torchvision_parts,
)
from transferlab.data.sampling import stratified_holdout, train_count_split
from transferlab.errors import InputError


@dataclass(frozen=True)
class RawSet:
    """One data set at its native resolution: uint8 (N, C, H, W) tensors (or, for folder sets
    with storage "files", ImageFiles), labels 0..C-1."""

    name: str
    classes: list[str]
    groups: list[str]  # per class: "manmade", "natural" or "" (no such hierarchy)
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    val_x: torch.Tensor | None = None  # a validation part (image folders' val/ with data.val_folder)
    val_y: torch.Tensor | None = None


def _resource(*parts: str) -> str:
    return resources.files("transferlab").joinpath("resources", *parts).read_text()


def cifar100_groups() -> dict[str, str]:
    """CIFAR-100 class name -> "manmade" / "natural", from the shipped superclass table."""
    rows = csv.DictReader(
        line for line in _resource("cifar100_superclasses.csv").splitlines() if not line.startswith("#")
    )
    return {c: row["group"] for row in rows for c in row["classes"].split()}


CIFAR10_MANMADE = {"airplane", "automobile", "ship", "truck"}


def ilsvrc12_wnids() -> list[str]:
    """The 1000 ILSVRC-2012 WordNet ids in class-index order."""
    return _resource("ilsvrc12", "synsets.txt").split()


def ilsvrc12_groups() -> dict[str, str]:
    """WordNet id -> "manmade" / "natural": the paper's 551 / 449 class lists."""
    wnids = ilsvrc12_wnids()
    manmade = {wnids[int(i)] for i in _resource("ilsvrc12", "manmade_idx.txt").split()}
    return {w: "manmade" if w in manmade else "natural" for w in wnids}


def imagenet100_wnids() -> list[str]:
    return [w for w in _resource("ilsvrc12", "imagenet100.txt").split() if w.startswith("n")]


# --- torchvision's small-image data sets -------------------------------------------------


def load_torchvision(name: str, cfg: DataConfig) -> RawSet:
    """CIFAR-10/100, SVHN, MNIST or Fashion-MNIST from `cfg.root` (the download stage's output)."""
    root = Path(cfg.root)
    missing = [f.path for f in original_files(name, root) if not f.path.is_file()]
    if missing:
        listed = ", ".join(str(p.relative_to(root)) for p in missing)
        raise InputError(
            f"{name}: {root} lacks {listed}; run `transferlab download` (it fetches them with data.download: true)"
            + copy_hint(root)
        )
    cls = torchvision_class(name, cfg.verify)
    parts = []
    for kwargs in torchvision_parts(name):
        try:
            ds = cls(str(root), download=False, **kwargs)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
            raise InputError(
                f"{name}: {root}: {err} (the files' MD5 sums differ from the published ones; data.verify: false skips the check)"
            ) from None
        parts.append(_arrays(name, ds))
    (train_x, train_y, classes), (test_x, test_y, _) = parts
    groups = _groups(name, classes)
    return RawSet(name, classes, groups, train_x, train_y, test_x, test_y)


def _arrays(name: str, ds) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """uint8 NCHW images, int64 labels and class names of a torchvision data set object."""
    if name == "svhn":  # already NCHW; torchvision maps the digit 0's label 10 to 0
        return (
            torch.from_numpy(np.ascontiguousarray(ds.data)),
            torch.as_tensor(ds.labels, dtype=torch.int64),
            [str(d) for d in range(10)],
        )
    if name in ("mnist", "fashion_mnist"):
        return ds.data.unsqueeze(1).contiguous(), ds.targets.to(torch.int64), list(ds.classes)
    x = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))  # CIFAR: NHWC
    return x, torch.as_tensor(ds.targets, dtype=torch.int64), list(ds.classes)


def _groups(name: str, classes: list[str]) -> list[str]:
    if name == "cifar100":
        table = cifar100_groups()
        return [table.get(c, "") for c in classes]
    if name == "cifar10":
        return ["manmade" if c in CIFAR10_MANMADE else "natural" for c in classes]
    return [""] * len(classes)


# --- folders of images ----------------------------------------------------------------------


def _read(folder: Path, classes: list[str], cfg: DataConfig):
    """The images of the class sub-folders: their file list, decoded while training (storage
    "files"), or decoded once into a tensor, the short side resized to image_size and
    centre-cropped (storage "tensor": the resized cache)."""
    paths, y, digests = list_files(folder, classes, cfg.outside_links)
    # The folder as params.yaml names it (relative to the project): the same bytes in every clone.
    files = ImageFiles(str(folder), tuple(paths), cfg.image_size, tuple(digests), cfg.workers)
    files.check()  # every image, whichever storage: a bad file stops prepare, not training
    return (files if cfg.storage == "files" else files.decode(resize=1.0, label=f"decode {folder}")), y


def _class_dirs(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _split_dirs(folder: Path, val_folder: bool = False) -> tuple[Path, Path | None, Path | None]:
    """(train, test, val) sub-folders: train/ with test/ or val/ (the test part), else the
    folder itself and None; with `val_folder`, train/, val/ and test/ (val/ the validation part)."""
    if val_folder:
        return folder / "train", folder / "test", folder / "val"
    if (folder / "train").is_dir():
        for test in ("test", "val"):
            if (folder / test).is_dir():
                return folder / "train", folder / test, None
    return folder, None, None


def load_image_folder(cfg: DataConfig, name: str = "imagefolder", only: list[str] | None = None) -> RawSet:
    """A class-folder tree: train/ and test/ (or val/) sub-folders, or one folder whose
    images are split per class by `data.test_fraction`; with `data.val_folder`, train/, val/
    and test/. `only` restricts the classes."""
    folder = Path(cfg.image_folder or "")
    if not folder.is_dir():
        raise InputError(
            f"{name}: data.image_folder {folder} is not a folder; expected class sub-folders (or train/ and val/ holding them)"
        )
    train_dir, test_dir, val_dir = _split_dirs(folder, cfg.val_folder)
    if cfg.val_folder and (lacking := [d.name + "/" for d in (train_dir, val_dir, test_dir) if not d.is_dir()]):
        raise InputError(
            f"{name}: {folder} lacks {', '.join(lacking)}; data.val_folder: true reads train/, val/ and test/ class folders"
        )
    classes = _class_dirs(train_dir) if only is None else only
    parts = [d for d in (test_dir, val_dir) if d is not None]
    absent = [c for c in classes if not (train_dir / c).is_dir() or any(not (d / c).is_dir() for d in parts)]
    if absent:
        raise InputError(
            f"{name}: {folder} lacks class folders {', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''} ({len(absent)} of {len(classes)})"
        )
    if len(classes) < 2:
        raise InputError(f"{name}: {train_dir} holds {len(classes)} class folders, need at least 2")
    differing = (
        [d for d in parts if _class_dirs(d) != classes] if only is None else []
    )  # (a chosen subset may leave folders out)
    if differing:
        raise InputError(f"{name}: {train_dir} and {differing[0]} hold different class folders")
    x, y = _read(train_dir, classes, cfg)
    val_x, val_y = _read(val_dir, classes, cfg) if val_dir is not None else (None, None)
    if test_dir is not None:
        test_x, test_y = _read(test_dir, classes, cfg)
        train_x, train_y = x, y
    else:
        train_x, train_y, test_x, test_y = _held_out(x, y, classes, cfg.train_per_class, cfg, train_dir)
    return RawSet(name, classes, [""] * len(classes), train_x, train_y, test_x, test_y, val_x, val_y)


def _held_out(x, y: torch.Tensor, classes: list[str], per_class: int | None, cfg: DataConfig, folder: Path):
    """Training and test parts of one folder's images: `per_class` training images of each
    class and the rest tested, or `data.test_fraction` of each class held out."""
    if per_class is None:
        keep, held = stratified_holdout(y, cfg.test_fraction, cfg.seed)
    else:
        counts = torch.bincount(y, minlength=len(classes))
        if short := [c for c, k in zip(classes, counts.tolist()) if k <= per_class]:
            raise InputError(
                f"{folder}: {len(short)} class(es) hold no more than {per_class} images, the training images per class (data.train_per_class), e.g. {short[0]} ({int(counts[classes.index(short[0])])}): none would be left to test"
            )
        keep, held = train_count_split(y, per_class, cfg.seed)
    return x[keep], y[keep], x[held], y[held]


def load_caltech101(cfg: DataConfig) -> RawSet:
    """Caltech-101 in torchvision's layout under data.root: `data.train_per_class` images of
    each class (30 when null) for training, the rest for testing."""
    root = Path(cfg.root)
    classes = caltech101_classes(root)
    folder = root.joinpath(*CALTECH101_FOLDER)
    x, y = _read(folder, classes, cfg)
    per_class = cfg.train_per_class or CALTECH101_TRAIN_PER_CLASS
    parts = _held_out(x, y, classes, per_class, cfg, folder)
    return RawSet("caltech101", classes, [""] * len(classes), *parts)


def load_imagenet(cfg: DataConfig, subset: bool) -> RawSet:
    """ILSVRC-2012 (or the ImageNet-100 subset) from train/ and val/ in class-folder layout.

    A folder holding torchvision's ImageNet layout (devkit and the train/val archives) is
    unpacked into that layout first by torchvision.datasets.ImageNet (with its MD5 checks)."""
    folder = Path(cfg.image_folder or "")
    if folder.is_dir() and not (folder / "train").is_dir() and any(folder.glob("ILSVRC2012_devkit_t12.tar*")):
        from torchvision.datasets import ImageNet

        for part in ("train", "val"):
            ImageNet(str(folder), split=part)
    name = "imagenet100" if subset else "imagenet"
    groups = ilsvrc12_groups()
    if subset:
        wanted = sorted(imagenet100_wnids())
    else:
        train_dir = _split_dirs(folder)[0] if folder.is_dir() else folder
        wanted = _class_dirs(train_dir) if train_dir.is_dir() else []
        unknown = [w for w in wanted if w not in groups]
        if unknown:
            raise InputError(
                f"imagenet: {train_dir} has folders that are not ILSVRC-2012 WordNet ids: {', '.join(unknown[:5])}"
            )
    raw = load_image_folder(cfg, name, only=wanted or None)
    return dataclasses.replace(raw, groups=[groups[c] for c in raw.classes])


def load_source(name: str, cfg: DataConfig) -> RawSet:
    """The named data set (not the synthetic one) at native resolution."""
    if name == "arrays":
        classes, parts = load_arrays(Path(cfg.image_folder or ""), cfg.val_folder)
        val = parts.get("val", (None, None))
        return RawSet(name, classes, [""] * len(classes), *parts["train"], *parts["test"], *val)
    if name in ("imagenet", "imagenet100"):
        return load_imagenet(cfg, subset=name == "imagenet100")
    if name == "imagefolder":
        return load_image_folder(cfg)
    if name == "caltech101":
        return load_caltech101(cfg)
    return load_torchvision(name, cfg)
