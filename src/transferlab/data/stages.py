"""The data stages and their files: `prepare` (the data set as one tensor file) and `split`
(a class split as JSON), and the readers every training run and the feature cache use."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from transferlab.artifacts import atomic_json, atomic_torch_save, provenance
from transferlab.config import Params
from transferlab.config.sections import RUNTIME_KEYS
from transferlab.data.dataset import IMAGE_KEYS, PreparedDataset, TaskData, prepare_dataset, select_classes
from transferlab.data.files import ImageFiles
from transferlab.data.splits import Split, make_split
from transferlab.runs import Layout


def prepare(params: Params, out: Path) -> PreparedDataset:
    """Generate, or read (and download) and convert, the data set into one tensor file."""
    ds = prepare_dataset(params.data)
    saved = params.data.model_dump(exclude=set(RUNTIME_KEYS))  # what made the data, not how fast
    atomic_torch_save({**ds.to_dict(), "params": saved, **provenance()}, out)
    return ds


def load_dataset(path: Path, workers: int = 0) -> PreparedDataset:
    """Read a prepared data set written by `prepare`; image files are decoded in `workers`
    processes (data.workers: a setting of the machine, not saved with the data). Memory-mapped:
    a run copies only the classes it selects."""
    return PreparedDataset.from_dict(torch.load(path, weights_only=True, mmap=True), workers)


def split(params: Params, split_id: str, dataset: Path, out: Path) -> Split:
    """Make one class split and write it as JSON (class indices and names of A and B)."""
    ds = load_dataset(dataset)
    s = make_split(int(split_id) if split_id.isdigit() else split_id, ds.classes, ds.groups, ds.sources, params.split)
    names = {"names_a": [ds.classes[i] for i in s.classes_a], "names_b": [ds.classes[i] for i in s.classes_b]}
    atomic_json({**s.to_dict(), **names, "dataset": ds.name, **provenance()}, out)
    return s


def verify_files(path: Path) -> None:
    """With data.storage: files, that every image file still holds the bytes `prepare` recorded
    (one line naming the first that does not): the files are inputs of every run, like the data set."""
    d = torch.load(path, weights_only=True, mmap=True)
    for key in IMAGE_KEYS:
        if isinstance(d.get(key), dict):
            ImageFiles.from_dict(d[key]["files"]).verify()


def load_split(path: Path) -> Split:
    return Split.from_dict(json.loads(path.read_text()))


def task_data(layout: Layout, split_id: str, half: str, workers: int = 0) -> TaskData:
    """The images of one half (A or B) of a split, from the prepared data set."""
    return select_classes(load_dataset(layout.dataset, workers), load_split(layout.split_file(split_id)).half(half))
