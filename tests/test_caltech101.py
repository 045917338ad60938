"""Caltech-101 in torchvision's on-disk layout (written by the tests: nothing can be downloaded
here): checked by the download stage, read by prepare with 30 training images per class (or
data.train_per_class) and the rest for testing, the clutter folder left out; what is wrong is
one line, exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from transferlab.errors import InputError

from conftest import tiny_params
from formats import write_caltech101

CLASSES = ["accordion", "airplanes", "anchor", "ant"]


def _command(tmp_path: Path, command: str, *args: str, **data) -> subprocess.CompletedProcess:
    params = tiny_params(
        **{"data.dataset": "caltech101", "data.root": "raw", "data.workers": 0, "binary.equal_halves": False},
        **{f"data.{k}": v for k, v in data.items()},
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    script = Path(sys.executable).parent / "transferlab"
    return subprocess.run([str(script), command, *args], cwd=tmp_path, capture_output=True, text=True)


def _one_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert all(n in lines[0] for n in needles), lines[0]
    return lines[0]


def test_the_download_stage_checks_the_class_folders(tmp_path):
    _one_line(_command(tmp_path, "download", "--params", "params.yaml"), "caltech101:", "holds 0 class folder(s)")
    write_caltech101(tmp_path / "raw", CLASSES, per_class=3)
    proc = _command(tmp_path, "download", "--params", "params.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "caltech101: 4 class folders in raw/caltech101/101_ObjectCategories" in proc.stdout


def test_an_offline_download_is_one_error(tmp_path):
    """torchvision's own download of caltech-101.zip (its address is fixed in torchvision):
    this machine has no internet, so it fails, in one line."""
    from transferlab.data.download import fetch

    with pytest.raises(InputError, match=r"^caltech101: download to .* failed \(.*\); place the original files there$"):
        fetch("caltech101", tmp_path / "raw")


@pytest.mark.parametrize("storage", ["tensor", "files"])
def test_prepare_keeps_thirty_images_of_each_class_for_training_and_tests_the_rest(tmp_path, storage):
    counts = [31, 33, 35, 32]
    write_caltech101(tmp_path / "raw", CLASSES, per_class=counts)
    proc = _command(tmp_path, "prepare", "out/dataset.pt", storage=storage)
    assert proc.returncode == 0, proc.stderr
    ds = torch.load(tmp_path / "out/dataset.pt", weights_only=True)
    assert ds["classes"] == CLASSES  # the clutter folder is no class
    assert torch.bincount(ds["train_y"]).tolist() == [30] * 4
    assert torch.bincount(ds["test_y"]).tolist() == [c - 30 for c in counts]


def test_train_per_class_sets_the_count_and_a_class_too_small_for_it_is_named(tmp_path):
    write_caltech101(tmp_path / "raw", CLASSES, per_class=[4, 6, 6, 6])
    proc = _command(tmp_path, "prepare", "out/dataset.pt", train_per_class=3)
    assert proc.returncode == 0, proc.stderr
    ds = torch.load(tmp_path / "out/dataset.pt", weights_only=True)
    assert torch.bincount(ds["train_y"]).tolist() == [3] * 4 and torch.bincount(ds["test_y"]).tolist() == [1, 3, 3, 3]
    _one_line(
        _command(tmp_path, "prepare", "out/dataset.pt", train_per_class=5),
        "1 class(es) hold no more than 5 images, the training images per class (data.train_per_class), e.g. accordion (4)",
    )
    _one_line(_command(tmp_path, "prepare", "out/dataset.pt"), "no more than 30 images", "e.g. accordion (4)")
