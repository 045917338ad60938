"""The original files of torchvision's small-image data sets: which files torchvision lays
out under data.root, their published MD5 sums and where they come from, and torchvision's
class and parts for each set. Read by the download stage (download.py) and by prepare
(sources.py): the one table of both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from transferlab.errors import InputError

TORCHVISION_SETS = ("cifar10", "cifar100", "svhn", "mnist", "fashion_mnist")
DOWNLOADABLE_SETS = (*TORCHVISION_SETS, "caltech101")  # what torchvision's classes fetch (data.download)
# Caltech-101 in torchvision's layout: one folder of JPEGs per class under data.root (its
# download unpacks caltech-101.zip there after checking the archive's MD5, then deletes it).
CALTECH101_FOLDER = ("caltech101", "101_ObjectCategories")
CALTECH101_CLUTTER = "BACKGROUND_Google"  # not a class (torchvision drops it too)
CALTECH101_TRAIN_PER_CLASS = 30  # DeCAF's and Zeiler and Fergus's protocol: 30 per class, the rest tested


def caltech101_classes(root: Path) -> list[str]:
    """The class folders of a Caltech-101 copy under `root`, without the clutter folder; fewer
    than two stop the download stage and prepare alike, with where to get them."""
    folder = root.joinpath(*CALTECH101_FOLDER)
    names = sorted(d.name for d in folder.iterdir() if d.is_dir()) if folder.is_dir() else []
    classes = [n for n in names if n != CALTECH101_CLUTTER]
    if len(classes) < 2:
        raise InputError(
            f"caltech101: {folder} holds {len(classes)} class folder(s); unpack 101_ObjectCategories.tar.gz from"
            " caltech-101.zip (https://data.caltech.edu/records/mzrjq-6wc02) there, or set data.download: true where online"
            + copy_hint(root)
        )
    return classes


def copy_hint(root: Path) -> str:
    """Why files are missing in a queued or --temp DVC experiment (it runs in a copy of the
    repository, in .dvc/tmp/exps/, which holds no uncached output) when data.root is inside the
    repository, and what to do; else nothing."""
    copy = f"{os.sep}.dvc{os.sep}tmp{os.sep}exps{os.sep}" in f"{Path.cwd().resolve()}{os.sep}"
    if copy and not root.is_absolute():
        return (
            " (this queued or --temp experiment runs in a copy of the repository, which holds no uncached data.root:"
            " set data.root to a folder outside the repository, an absolute path)"
        )
    return ""


@dataclass(frozen=True)
class OriginalFile:
    """One file a local copy must hold, its published MD5 (None: torchvision publishes none
    for it) and where it comes from."""

    path: Path
    md5: str | None
    url: str


def original_files(name: str, root: Path) -> list[OriginalFile]:
    """The files torchvision lays out for `name` under `root`. MNIST's sums are published for
    its .gz archives, which torchvision keeps beside the extracted files: those are checked
    where present."""
    from torchvision import datasets as tvd

    if name in ("cifar10", "cifar100"):
        cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
        archive = f"{cls.url} (extract {cls.filename})"
        listed = [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]
        return [OriginalFile(root / cls.base_folder / f, md5, archive) for f, md5 in listed]
    if name == "svhn":
        return [
            OriginalFile(root / tvd.SVHN.split_list[s][1], tvd.SVHN.split_list[s][2], tvd.SVHN.split_list[s][0])
            for s in ("train", "test")
        ]
    return [OriginalFile(a.path.with_suffix(""), None, a.url) for a in archives(name, root)]


def archives(name: str, root: Path) -> list[OriginalFile]:
    """MNIST / Fashion-MNIST: the .gz archives and their published sums."""
    from torchvision import datasets as tvd

    cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
    return [OriginalFile(root / cls.__name__ / "raw" / f, md5, f"{cls.mirrors[0]}{f}") for f, md5 in cls.resources]


def torchvision_parts(name: str) -> list[dict]:
    """The keyword arguments of torchvision's class for the training part, then the test part
    (Caltech-101 has one part: prepare splits it per class)."""
    if name == "caltech101":
        return [{"target_type": "category"}]
    return [{"split": "train"}, {"split": "test"}] if name == "svhn" else [{"train": True}, {"train": False}]


def torchvision_class(name: str, verify: bool):
    """torchvision's class for `name`; with verify off, its MD5 check only asks that the files exist."""
    from torchvision import datasets as tvd

    cls = {
        "cifar10": tvd.CIFAR10,
        "cifar100": tvd.CIFAR100,
        "svhn": tvd.SVHN,
        "mnist": tvd.MNIST,
        "fashion_mnist": tvd.FashionMNIST,
        "caltech101": tvd.Caltech101,
    }[name]
    if verify or not hasattr(cls, "_check_integrity"):  # MNIST checks existence only; MD5 at download
        return cls

    class Unverified(cls):
        if hasattr(cls, "meta"):  # CIFAR checks its metadata file's MD5 separately
            meta = {**cls.meta, "md5": None}

        def _check_integrity(self) -> bool:
            return all(f.path.is_file() for f in original_files(name, Path(self.root)))

    return Unverified
