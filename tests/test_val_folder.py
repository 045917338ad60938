"""A data set's own validation part: an image folder with train/, val/ and test/ (data.val_folder)."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.config import DataConfig, TrainConfig
from transferlab.data.dataset import PreparedDataset, prepare_dataset, select_classes
from transferlab.models import create_model
from transferlab.train import FitOptions, fit, validation_part
from transferlab.transfer import param_groups

from conftest import project, tiny_params
from formats import label_of, write_image_folder

CLASSES = ["forward", "left", "right", "stop"]
PARTS = ("train", "val", "test")


@pytest.fixture
def lanes(tmp_path):
    write_image_folder(tmp_path / "lanes", CLASSES, per_class=6, parts=PARTS)
    return tmp_path / "lanes"


def _cfg(folder, **kw) -> DataConfig:
    return DataConfig(dataset="imagefolder", image_folder=str(folder), image_size=16, workers=0, val_folder=True, **kw)


@pytest.mark.parametrize("storage", ["tensor", "files"])
def test_the_val_part_is_prepared_capped_and_saved(lanes, storage):
    ds = prepare_dataset(_cfg(lanes, storage=storage, max_test_per_class=4))
    assert (len(ds.train_y), len(ds.val_y), len(ds.test_y)) == (24, 16, 16)  # val capped like test
    assert torch.bincount(ds.val_y).tolist() == [4, 4, 4, 4]
    val_x = ds.val_x if storage == "tensor" else ds.val_x.decode()
    assert (label_of(val_x) == ds.val_y.numpy()).all()  # each image still carries its class
    again = PreparedDataset.from_dict(torch.load(_saved(ds, lanes.parent / "ds.pt"), weights_only=True))
    assert torch.equal(again.val_y, ds.val_y) and len(again.val_x) == 16
    task = select_classes(again, [1, 3])
    assert task.val_y.tolist() == [0] * 4 + [1] * 4 and len(task.val_x) == 8


def _saved(ds: PreparedDataset, path):
    torch.save(ds.to_dict(), path)
    return path


def test_without_val_folder_the_val_part_is_not_read(lanes):
    ds = prepare_dataset(DataConfig(dataset="imagefolder", image_folder=str(lanes), image_size=16, workers=0))
    assert ds.val_y is None and len(ds.test_y) == 24  # test/ is the test part, val/ unused


@pytest.mark.parametrize("storage", ["tensor", "files"])
def test_the_fit_validates_on_the_val_part_and_trains_on_every_training_image(lanes, storage):
    task = select_classes(prepare_dataset(_cfg(lanes, storage=storage)), [0, 1, 2, 3])
    data, where = validation_part(task, val_fraction=0.5, seed=0)  # val_fraction holds nothing out
    assert (
        len(data["train_y"]) == 24
        and data["val_y"] is task.val_y
        and where == {"train_images": 24, "val_from": "val_folder", "val_images": 24}
    )
    cfg = TrainConfig(epochs=3, batch_size=8, lr=0.05, patience=1, schedule="constant")
    torch.manual_seed(0)
    model = create_model("convnet8", 4, width=0.0625, image_size=16)
    history = fit(model, task, cfg, param_groups(model, 0, 1.0), FitOptions(torch.device("cpu"), seed=0))
    summary = history.summary(3)
    assert (
        all("val_top1" in r for r in history.records)
        and summary["val_from"] == "val_folder"
        and summary["val_images"] == 24
    )


def test_a_missing_part_is_named_in_one_line(tmp_path):
    write_image_folder(tmp_path / "lanes", CLASSES, per_class=2, parts=("train", "val"))
    params = tiny_params(
        **{
            "data.dataset": "imagefolder",
            "data.image_folder": str(tmp_path / "lanes"),
            "data.val_folder": True,
            "data.workers": 0,
        }
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "dataset.pt"
    result = CliRunner().invoke(app, ["prepare", str(out), "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 2 and not out.exists()
    assert result.output.strip() == (
        f"error: imagefolder: {tmp_path / 'lanes'} lacks test/; data.val_folder: true reads train/, val/ and test/ class folders"
    )


def test_early_stopping_and_best_linear_use_the_val_part_through_the_commands(lanes, tmp_path):
    params = tiny_params(
        **{
            "data.dataset": "imagefolder",
            "data.image_folder": str(lanes),
            "data.val_folder": True,
            "data.workers": 0,
            "strategies.names": ["best_linear"],
            "strategies.cut_layers": [2],
            "strategies.images_per_class": [5],
        }
    )
    params["strategies"]["train"].update(patience=1, epochs=3)  # accepted: the data set has its own validation part
    run = project(tmp_path, params, "0")
    for run_id in ("s0/baseA/r0", "s0/cut2/r0", "s0/strat-best_linear-i5/r0"):
        run("train", run_id, "--device", "cpu", "--root", str(tmp_path))
    cut = json.loads((tmp_path / "data/runs/strategies/s0/cut2/r0/metrics.json").read_text())
    assert (cut["val_from"], cut["val_images"], cut["train_images"]) == (
        "val_folder",
        12,
        12,
    )  # B: 2 classes, 6 train and 6 val images each
    linear = json.loads((tmp_path / "data/runs/strategies/s0/strat-best_linear-i5/r0/metrics.json").read_text())
    assert linear["val_from"] == "val_folder" and linear["train_images"] == 10 and len(linear["val_top1_by_unit"]) == 7


def test_a_part_with_other_class_folders_is_named(lanes):
    from transferlab.errors import InputError

    (lanes / "val" / "yield").mkdir()
    with pytest.raises(InputError, match=r"lanes/train and .*lanes/val hold different class folders"):
        prepare_dataset(_cfg(lanes))
