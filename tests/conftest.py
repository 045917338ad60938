"""Shared fixtures: a shrunken real configuration (fewer classes, images and epochs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def tiny_params(**overrides) -> dict:
    """The project's params.yaml, shrunk so that a run takes about a second on a CPU."""
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["data"].update(image_size=16)
    p["data"]["synthetic"].update(num_classes=8, train_per_class=24, test_per_class=8)
    p["train"].update(epochs=1, batch_size=32)
    p["transfer"].update(layers=[1, 7])
    p["strategies"].update(names=["classifier", "finetune_top"], images_per_class=[5], cut_layers=[2])
    p["strategies"]["train"].update(batch_size=32)
    for key, value in overrides.items():
        *sections, name = key.split(".")
        target = p
        for section in sections:
            target = target[section]
        target[name] = value
    return p


def command_runner(params_file: Path):
    """Run `transferlab <args> --params params_file` in-process and check that it succeeded."""
    from typer.testing import CliRunner

    from transferlab.cli import app

    def run(*args: str) -> str:
        result = CliRunner().invoke(app, [*args, "--params", str(params_file)])
        assert result.exit_code == 0, result.output
        return result.output

    return run


def project(root: Path, params: dict, *splits: str):
    """A project folder: params.yaml, and the prepared data set, the splits and the settings
    files at their Layout paths, made by the real commands; returns the command runner.
    Runs are then trained with run("train", "<run id>", "--device", "cpu", "--root", str(root))."""
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    run = command_runner(path)
    dataset = root / "data/prepared/dataset.pt"
    run("prepare", str(dataset))
    for split in splits:
        run("split", "--split", split, str(dataset), str(root / f"data/splits/s{split}.json"))
    run("settings", str(root / "data/settings"))
    return run


@pytest.fixture
def tiny_params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params()))
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, str]:
    """The tiny configuration, run once by `dvc repro` in a repository of its own, and its log.
    Never changed: a test that changes a repository works on a copy (pipeline.copy_repo)."""
    from pipeline import make_repo, sh

    repo = make_repo(tmp_path_factory.mktemp("tiny") / "repo", tiny_params())
    return repo, sh(repo, "dvc", "repro")
