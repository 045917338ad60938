"""A prepared data set: uint8 image tensors plus class names and their groups."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from transferlab.config import DataConfig
from transferlab.data import synthetic
from transferlab.data.files import ImageFiles
from transferlab.data.sampling import per_class_subset
from transferlab.data.sources import load_source

Images = torch.Tensor | ImageFiles  # uint8 (N, 3, H, W) in memory, or files decoded while training


IMAGE_KEYS = ("train_x", "test_x", "val_x")


@dataclass(frozen=True)
class PreparedDataset:
    """Train and test images (and a validation part, when the data set has one) as uint8 NCHW
    tensors (or ImageFiles) with int64 labels 0..C-1."""

    name: str
    classes: list[str]
    groups: list[str]  # per class: "manmade" or "natural"
    train_x: Images
    train_y: torch.Tensor
    test_x: Images
    test_y: torch.Tensor
    sources: list[str] = field(default_factory=list)  # per class: the data set it comes from
    val_x: Images | None = None  # data.val_folder: the folder's val/ part
    val_y: torch.Tensor | None = None

    def to_dict(self) -> dict:
        """Plain dict of tensors, strings and lists (loadable with weights_only=True)."""
        d = dict(self.__dict__)
        for key in IMAGE_KEYS:
            if isinstance(d[key], ImageFiles):
                d[key] = {"files": d[key].to_dict()}
        return d

    @classmethod
    def from_dict(cls, d: dict, workers: int = 0) -> PreparedDataset:
        d = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for key in IMAGE_KEYS:
            if isinstance(d.get(key), dict):
                d[key] = ImageFiles.from_dict(d[key]["files"]).with_workers(workers)
        return cls(**d)


def prepare_synthetic(cfg: DataConfig) -> PreparedDataset:
    """Generate the embedded synthetic data set described by `cfg`."""
    syn = cfg.synthetic
    recipes = synthetic.class_recipes(syn.num_classes, cfg.seed)
    train = synthetic.generate(syn.num_classes, syn.train_per_class, cfg.image_size, cfg.seed, "train")
    test = synthetic.generate(syn.num_classes, syn.test_per_class, cfg.image_size, cfg.seed, "test")
    return PreparedDataset(
        name="synthetic",
        classes=[r.name for r in recipes],
        groups=[r.group for r in recipes],
        train_x=torch.from_numpy(train.x),
        train_y=torch.from_numpy(train.y),
        test_x=torch.from_numpy(test.x),
        test_y=torch.from_numpy(test.y),
        sources=["synthetic"] * syn.num_classes,
    )


def prepare_dataset(cfg: DataConfig) -> PreparedDataset:
    """The data set of params `data`: one, or A's and B's side by side (cross-data-set tasks),
    all images 3-channel at `image_size`, at most `max_*_per_class` images per class."""
    parts = [_prepare_one(name, cfg) for name in cfg.datasets()]
    return parts[0] if len(parts) == 1 else concat(parts)


def _prepare_one(name: str, cfg: DataConfig) -> PreparedDataset:
    if name == "synthetic":
        ds = prepare_synthetic(cfg)
    else:
        raw = load_source(name, cfg)
        ds = PreparedDataset(
            name,
            raw.classes,
            raw.groups,
            conform(raw.train_x, cfg.image_size),
            raw.train_y,
            conform(raw.test_x, cfg.image_size),
            raw.test_y,
            [name] * len(raw.classes),
            None if raw.val_x is None else conform(raw.val_x, cfg.image_size),
            raw.val_y,
        )
    return cap_per_class(ds, cfg.max_train_per_class, cfg.max_test_per_class, cfg.seed)


def conform(x: Images, size: int, chunk: int = 4096) -> Images:
    """uint8 images as 3 channels (grey repeated) of size x size (bilinear, antialiased).
    Image files are made so when they are decoded."""
    if isinstance(x, ImageFiles):
        return x
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if tuple(x.shape[2:]) == (size, size):
        return x.contiguous()
    out = torch.empty((len(x), 3, size, size), dtype=torch.uint8)
    for i in range(0, len(x), chunk):
        xf = x[i : i + chunk].float()
        xf = torch.nn.functional.interpolate(
            xf, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out[i : i + chunk] = xf.round_().clamp_(0, 255).to(torch.uint8)
    return out


def cap_per_class(ds: PreparedDataset, max_train: int | None, max_test: int | None, seed: int) -> PreparedDataset:
    """At most `max_train` training images per class, `max_test` test (and validation) images."""
    tr = per_class_subset(ds.train_y, max_train, seed)
    te = per_class_subset(ds.test_y, max_test, seed + 1)
    out = replace(ds, train_x=ds.train_x[tr], train_y=ds.train_y[tr], test_x=ds.test_x[te], test_y=ds.test_y[te])
    if ds.val_y is None:
        return out
    va = per_class_subset(ds.val_y, max_test, seed + 2)
    return replace(out, val_x=ds.val_x[va], val_y=ds.val_y[va])


def concat(parts: list[PreparedDataset]) -> PreparedDataset:
    """Data sets side by side: classes named "<data set>:<class>", labels offset."""
    offsets = [0]
    for d in parts[:-1]:
        offsets.append(offsets[-1] + len(d.classes))
    return PreparedDataset(
        name="+".join(d.name for d in parts),
        classes=[f"{d.name}:{c}" for d in parts for c in d.classes],
        groups=[g for d in parts for g in d.groups],
        train_x=torch.cat([d.train_x for d in parts]),
        train_y=torch.cat([d.train_y + o for d, o in zip(parts, offsets)]),
        test_x=torch.cat([d.test_x for d in parts]),
        test_y=torch.cat([d.test_y + o for d, o in zip(parts, offsets)]),
        sources=[s for d in parts for s in d.sources],
    )  # (no validation part: data.val_folder takes one data set)


@dataclass(frozen=True)
class TaskData:
    """One task (a half of a split): images of its classes, labels re-indexed 0..k-1."""

    classes: list[str]
    train_x: Images
    train_y: torch.Tensor
    test_x: Images
    test_y: torch.Tensor
    val_x: Images | None = None  # the data set's validation part, if it has one
    val_y: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def select_classes(ds: PreparedDataset, class_indices: list[int]) -> TaskData:
    """The task of the given classes; label i is class_indices[i] (sorted order kept)."""
    lookup = torch.full((len(ds.classes),), -1, dtype=torch.int64)
    lookup[torch.tensor(class_indices)] = torch.arange(len(class_indices))

    def pick(x: Images, y: torch.Tensor) -> tuple[Images, torch.Tensor]:
        keep = lookup[y] >= 0
        return x[keep], lookup[y[keep]]

    train_x, train_y = pick(ds.train_x, ds.train_y)
    test_x, test_y = pick(ds.test_x, ds.test_y)
    val_x, val_y = pick(ds.val_x, ds.val_y) if ds.val_y is not None else (None, None)
    return TaskData([ds.classes[i] for i in class_indices], train_x, train_y, test_x, test_y, val_x, val_y)


def task_subset(task: TaskData, images_per_class: int | str, seed: int) -> TaskData:
    """A task's training images cut to k per class: the first k of one seeded permutation per
    class, so the subsets for growing k are nested and every run of a study gets the same images."""
    if images_per_class == "all":
        return task
    keep = per_class_subset(task.train_y, int(images_per_class), seed)
    return replace(task, train_x=task.train_x[keep], train_y=task.train_y[keep])
