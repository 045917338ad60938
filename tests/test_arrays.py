"""Image arrays as a data set (data.dataset: arrays): .npy frames and labels with their own
train, val and test parts, checked at prepare with one line naming the file and the problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.config import DataConfig
from transferlab.data.dataset import prepare_dataset

from conftest import tiny_params
from formats import label_of, write_arrays


def _cfg(folder, **kw) -> DataConfig:
    return DataConfig(dataset="arrays", image_folder=str(folder), image_size=16, **kw)


@pytest.mark.parametrize("floats", [False, True])
def test_frames_and_labels_are_prepared_with_their_val_part(tmp_path, floats):
    write_arrays(tmp_path / "frames", floats=floats)
    (tmp_path / "frames/classes.txt").write_text("left\nforward\nright\n")
    ds = prepare_dataset(_cfg(tmp_path / "frames", val_folder=True))
    assert ds.classes == ["left", "forward", "right"]
    assert (len(ds.train_y), len(ds.val_y), len(ds.test_y)) == (18, 18, 18)
    assert ds.train_x.shape[1:] == (3, 16, 16) and ds.train_x.dtype == torch.uint8
    assert (label_of(ds.test_x) == ds.test_y.numpy()).all()  # each frame still carries its label


def test_without_val_folder_the_val_arrays_are_not_read_and_classes_are_numbered(tmp_path):
    write_arrays(tmp_path / "frames", parts=("train", "test"))
    ds = prepare_dataset(_cfg(tmp_path / "frames"))
    assert ds.val_y is None and ds.classes == ["0", "1", "2"]


def _bad_labels(folder):
    np.save(folder / "test_labels.npy", np.full(18, 7, dtype=np.int64))


def _float_range(folder):
    np.save(folder / "train_images.npy", np.full((18, 24, 24, 3), 2.0, dtype=np.float32))


def _shape(folder):
    np.save(folder / "train_images.npy", np.zeros((18, 24, 24), dtype=np.uint8))


def _count(folder):
    np.save(folder / "train_labels.npy", np.zeros(5, dtype=np.int64))


def _pickled(folder):
    np.save(folder / "train_labels.npy", np.array([{"label": 1}] * 18, dtype=object), allow_pickle=True)


def _missing(folder):
    (folder / "test_images.npy").unlink()


BAD = {
    "label-range": (_bad_labels, "test_labels.npy has labels 7..7; expected 0..2 (3 classes)"),
    "float-range": (_float_range, "train_images.npy holds floats from 2 to 2; expected 0..1 (or uint8 0..255)"),
    "shape": (_shape, "train_images.npy has shape (18, 24, 24); expected N x H x W x C with C = 1 or 3"),
    "count": (_count, "train_labels.npy holds 5 labels for 18 images"),
    "pickled": (_pickled, "train_labels.npy is not a plain NumPy array file"),
    "missing": (_missing, "test_images.npy is missing"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_file_stops_prepare_with_one_line_naming_it(tmp_path, case):
    spoil, expected = BAD[case]
    write_arrays(tmp_path / "frames")
    spoil(tmp_path / "frames")
    params = tiny_params(**{"data.dataset": "arrays", "data.image_folder": str(tmp_path / "frames")})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "ds.pt"
    result = CliRunner().invoke(app, ["prepare", str(out), "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith("error: arrays: ") and expected in result.output, result.output
    assert not out.exists()


def test_arrays_cannot_be_streamed_from_files(tmp_path):
    params = tiny_params(**{"data.dataset": "arrays", "data.image_folder": "frames", "data.storage": "files"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(app, ["plan", "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 2 and "data.storage: found 'files'" in result.output, result.output
