"""The data stages and their files: `prepare` (the data set as one tensor file) and `split`
(a class split as JSON), and the readers every training run and the feature cache use."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from transferlab.artifacts import atomic_json, atomic_torch_save, provenance
from transferlab.config import Params
from transferlab.data.dataset import PreparedDataset, TaskData, prepare_dataset, select_classes
from transferlab.data.splits import Split, make_split
from transferlab.runs import Layout


def prepare(params: Params, out: Path) -> PreparedDataset:
    """Generate, or read (and download) and convert, the data set into one tensor file."""
    ds = prepare_dataset(params.data)
    atomic_torch_save({**ds.to_dict(), "params": params.data.model_dump(), **provenance(revision=False)}, out)
    return ds


def load_dataset(path: Path) -> PreparedDataset:
    """Read a prepared data set written by `prepare`."""
    return PreparedDataset.from_dict(torch.load(path, weights_only=True))


def split(params: Params, split_id: str, dataset: Path, out: Path) -> Split:
    """Make one class split and write it as JSON (class indices and names of A and B)."""
    ds = load_dataset(dataset)
    s = make_split(int(split_id) if split_id.isdigit() else split_id, ds.classes, ds.groups, ds.sources, params.split)
    names = {"names_a": [ds.classes[i] for i in s.classes_a], "names_b": [ds.classes[i] for i in s.classes_b]}
    atomic_json({**s.to_dict(), **names, "dataset": ds.name, **provenance(revision=False)}, out)
    return s


def load_split(path: Path) -> Split:
    return Split.from_dict(json.loads(path.read_text()))


def task_data(layout: Layout, split_id: str, half: str) -> TaskData:
    """The images of one half (A or B) of a split, from the prepared data set."""
    return select_classes(load_dataset(layout.dataset), load_split(layout.split_file(split_id)).half(half))
