"""Folder data sets decoded from their files while training (data.storage: files)."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.config import DataConfig, TrainConfig
from transferlab.data.dataset import PreparedDataset, prepare_dataset, select_classes
from transferlab.data.files import ImageFiles
from transferlab.models import create_model
from transferlab.train import FitOptions, fit
from transferlab.transfer import param_groups

from conftest import project, tiny_params
from formats import label_of, write_image_folder

CLASSES = ["forward", "left", "right", "stop"]


@pytest.fixture
def folder(tmp_path):
    write_image_folder(tmp_path / "lane", CLASSES, per_class=6)
    return tmp_path / "lane"


def _prepared(folder, workers=0, size=24) -> PreparedDataset:
    return prepare_dataset(
        DataConfig(dataset="imagefolder", image_folder=str(folder), image_size=size, workers=workers, storage="files")
    )


def test_the_prepared_data_set_lists_the_files_and_round_trips(folder):
    ds = _prepared(folder)
    assert isinstance(ds.train_x, ImageFiles) and len(ds.train_x) == 24 and len(ds.test_x) == 24
    assert ds.train_y.tolist() == [c for c in range(4) for _ in range(6)]
    assert all(p.startswith(CLASSES[y] + "/") for p, y in zip(ds.train_x.paths, ds.train_y.tolist()))
    again = PreparedDataset.from_dict(torch.load(_saved(ds, folder), weights_only=True))
    assert again.train_x == ds.train_x and torch.equal(again.test_y, ds.test_y)


def _saved(ds, folder):
    path = folder.parent / "ds.pt"
    torch.save(ds.to_dict(), path)
    return path


def test_files_decode_to_uint8_at_the_model_size_with_their_labels(folder):
    ds = _prepared(folder, workers=2)  # real worker processes
    x = ds.test_x.decode(batch_size=5)
    assert x.dtype == torch.uint8 and tuple(x.shape) == (24, 3, 24, 24)
    assert (label_of(x) == ds.test_y.numpy()).all()
    task = select_classes(ds, [1, 3])  # a half: the files of its classes, labels re-indexed
    assert len(task.train_x) == 12 and task.train_y.tolist() == [0] * 6 + [1] * 6
    assert (label_of(task.train_x.decode()) == [1] * 6 + [3] * 6).all()


def test_training_batches_are_augmented_by_seeded_workers(folder):
    files = _prepared(folder, workers=2).train_x
    epoch = lambda seed: list(files.batches(8, augment=True, generator=torch.Generator().manual_seed(seed)))  # noqa: E731
    first, again, other = epoch(0), epoch(0), epoch(1)
    assert [tuple(x.shape) for x, _ in first] == [(8, 3, 24, 24)] * 3
    assert sorted(torch.cat([p for _, p in first]).tolist()) == list(range(24))  # a permutation of the files
    assert all(torch.equal(a, b) and torch.equal(i, j) for (a, i), (b, j) in zip(first, again))  # repeatable
    assert not all(torch.equal(i, j) for (_, i), (_, j) in zip(first, other))


def test_fit_trains_from_files_and_resumes_to_the_same_numbers(folder, tmp_path):
    task = select_classes(_prepared(folder, workers=1, size=16), [0, 1, 2, 3])
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.05, val_fraction=0.25)

    def run(**opts):
        torch.manual_seed(0)
        model = create_model("convnet8", 4, width=0.0625, image_size=16)
        records = fit(
            model, task, cfg, param_groups(model, 0, 1.0), FitOptions(torch.device("cpu"), seed=3, **opts)
        ).records
        return [{k: v for k, v in r.items() if k != "images_per_s"} for r in records]  # all but the clock

    straight = run()
    assert len(straight) == 2 and all(0 <= r["test_top1"] <= 1 and "val_top1" in r for r in straight)
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        run(
            checkpoint=ckpt,
            fingerprint="f",
            on_record=lambda r: (_ for _ in ()).throw(KeyboardInterrupt) if r["epoch"] > 1 else None,
        )
    assert ckpt.is_file()
    assert run(checkpoint=ckpt, fingerprint="f") == straight


def test_storage_files_through_the_commands(folder, tmp_path):
    params = tiny_params(
        **{
            "data.dataset": "imagefolder",
            "data.image_folder": str(folder),
            "data.storage": "files",
            "data.workers": 1,
            "splits": ["classes"],
            "transfer.layers": [3],
            "strategies.cut_layers": [2],
        }
    )
    params["split"]["classes_a"] = ["forward", "left"]
    params["binary"]["equal_halves"] = False
    run = project(tmp_path, params, "classes")
    assert (tmp_path / "data/prepared/dataset.pt").stat().st_size < 50_000  # a file list, not pixels
    for run_id in ("sclasses/baseA/r0", "sclasses/A3B+/r0", "sclasses/cut2/r0"):
        run("train", run_id, "--device", "cpu", "--root", str(tmp_path))
    metrics = json.loads((tmp_path / "data/runs/grid/sclasses/A3B+/r0/metrics.json").read_text())
    assert metrics["run_id"] == "sclasses/A3B+/r0" and 0 <= metrics["final_top1"] <= 1
    cut = json.loads((tmp_path / "data/runs/strategies/sclasses/cut2/r0/metrics.json").read_text())
    assert cut["latency_batch"] == 12  # B's 12 held-out files, decoded
    timed = json.loads((tmp_path / "data/measurements/sclasses/cut2/r0.json").read_text())
    assert timed["latency_s_per_image"] > 0 and timed["wall_time_s"] > 0  # measurements: apart from the metrics


def test_storage_files_needs_a_folder_data_set(tmp_path):
    params = tiny_params(**{"data.storage": "files"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(app, ["plan", "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {tmp_path / 'params.yaml'}: data.storage: found 'files', allowed: tensor, or files with an image file data set "
        "(imagenet, imagenet100, imagefolder, caltech101) and no data.b_dataset"
    )
