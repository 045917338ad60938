"""Shared fixtures: a shrunken real configuration (fewer classes, images and epochs)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# Each test process leases CPU cores from a lock folder of its own (devices.py; private, 0700):
# a pipeline's commands still lease their `threads` cores, but one worker's pipeline does not
# wait for another's (every test pipeline computes with one thread; make test runs a worker
# more than there are cores, to use the time a worker waits on SLURM's scheduler). The tests
# of the leases themselves name folders of their own.
if "TRANSFERLAB_LOCK_DIR" not in os.environ:
    os.environ["TRANSFERLAB_LOCK_DIR"] = tempfile.mkdtemp(prefix="transferlab-test-locks-")
    atexit.register(shutil.rmtree, os.environ["TRANSFERLAB_LOCK_DIR"], ignore_errors=True)

# The test processes import torchvision themselves (test modules, in-process commands), which
# makes Inductor's cache folder at once: the private one, as every command does (cli.py), not
# /tmp/torchinductor_<user>.
from transferlab.private import compile_caches  # noqa: E402

compile_caches()


def tiny_params(**overrides) -> dict:
    """The project's params.yaml, shrunk so that a run takes about a second on a CPU; one thread
    per command (the end-to-end tests run side by side, more workers than cores: more threads
    would only crowd them)."""
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["threads"] = 1
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


# make test runs the tests side by side (pytest-xdist, a worker per core): a module named here
# goes whole to one worker (a host-wide resource: the SLURM cluster), every other test on its own.
ONE_WORKER = ("tests/test_slurm.py",)


def pytest_xdist_make_scheduler(config, log):
    """xdist's scheduler by scope, a scope being one test, or one module of ONE_WORKER. (Its own
    `xdist_group` mark does nothing under pytest 9: it renames a test by an attribute pytest no
    longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER else nodeid

    return Scheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end tests first (in their files' order): the workers start on the long ones and
    finish on the short ones, so none is left running a long test alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def run_once(tmp_path_factory, name: str, build) -> Path:
    """`build(folder)` run once for the whole test run, in <run folder>/<name>, whichever worker
    asks first (the others wait on a lock); its folder. What it builds is never changed: a test
    that changes it works on a copy (pipeline.copy_repo)."""
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above each worker's own
    folder = shared / name
    with FileLock(shared / f"{name}.lock"):
        if not (folder / ".built").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, str]:
    """The tiny configuration, run once by `dvc repro` in a repository of its own, and its log."""
    from pipeline import make_repo, sh

    def build(folder: Path) -> None:
        repo = make_repo(folder / "repo", tiny_params())
        (folder / "repro.log").write_text(sh(repo, "dvc", "repro"))

    folder = run_once(tmp_path_factory, "tiny", build)
    return folder / "repo", (folder / "repro.log").read_text()
