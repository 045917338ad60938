"""An image folder someone else can write to (a lab's shared data set folder): links, loops,
truncated files and decompression bombs planted by a second user are refused at `prepare`,
in one line, exit code 2, nothing written, whichever storage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import tiny_params
from formats import write_image_folder
from second_user import as_nobody, needs_second_user, shared_tmp_name

CLASSES = ["cat", "dog"]


def _prepare(tmp_path: Path, folder: Path, storage: str) -> subprocess.CompletedProcess:
    params = tiny_params(
        **{"data.dataset": "imagefolder", "data.image_folder": str(folder), "data.storage": storage, "data.workers": 0}
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    command = Path(sys.executable).parent / "transferlab"
    return subprocess.run([str(command), "prepare", "out/dataset.pt"], cwd=tmp_path, capture_output=True, text=True)


def _refused(tmp_path: Path, proc: subprocess.CompletedProcess, *needles: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert all(n in lines[0] for n in needles), lines[0]
    assert not (tmp_path / "out/dataset.pt").exists()


@pytest.fixture
def shared_folder():
    """A data set folder in /tmp that every user may write to (as a lab's shared one)."""
    with shared_tmp_name("transferlab-data-") as folder:
        write_image_folder(folder, CLASSES, per_class=2, parts=("train", "test"))
        for p in [folder, *folder.rglob("*")]:
            p.chmod(0o777 if p.is_dir() else 0o666)
        yield folder


@needs_second_user
@pytest.mark.parametrize("storage", ["tensor", "files"])
def test_a_link_loop_and_a_link_into_another_class_are_refused(tmp_path, shared_folder, storage):
    as_nobody("ln", "-s", ".", str(shared_folder / "train/cat/loop"))  # a loop: 2 images appeared as 81
    proc = _prepare(tmp_path, shared_folder, storage)
    assert proc.returncode == 0, proc.stderr  # the loop is walked once: nothing counted twice
    dataset = __import__("torch").load(tmp_path / "out/dataset.pt", weights_only=True)
    assert len(dataset["train_y"]) == 4
    (tmp_path / "out/dataset.pt").unlink()
    as_nobody("ln", "-s", "..", str(shared_folder / "train/cat/up"))  # the dogs reachable as cats
    _refused(
        tmp_path,
        _prepare(tmp_path, shared_folder, storage),
        "train/dog/img0.png",
        "the same file as",
        "train/cat/up/dog/img0.png",
    )
    as_nobody("rm", str(shared_folder / "train/cat/up"))
    dog = next((shared_folder / "train/dog").iterdir())
    as_nobody("ln", "-s", str(dog), str(shared_folder / "train/cat/a_dog.png"))  # one dog labelled as a cat
    _refused(tmp_path, _prepare(tmp_path, shared_folder, storage), "a_dog.png", "the same file as", str(dog.name))


@needs_second_user
@pytest.mark.parametrize("storage", ["tensor", "files"])
def test_a_truncated_image_is_named_at_prepare(tmp_path, shared_folder, storage):
    victim = next((shared_folder / "test/dog").iterdir())
    as_nobody("truncate", "-s", "60", str(victim))
    _refused(tmp_path, _prepare(tmp_path, shared_folder, storage), str(victim), "not a readable image")


@needs_second_user
def test_a_file_that_is_no_image_is_named_at_prepare(tmp_path, shared_folder):
    as_nobody("sh", "-c", f"echo 'not a png' > {shared_folder}/train/cat/fake.png")
    _refused(tmp_path, _prepare(tmp_path, shared_folder, "files"), "fake.png", "not a readable image")


def test_a_decompression_bomb_is_refused(tmp_path):
    from PIL import Image

    folder = tmp_path / "data"
    write_image_folder(folder, CLASSES, per_class=2, parts=("train", "test"))
    Image.new("L", (8000, 8000)).save(folder / "train/cat/bomb.png")  # 64 M pixels in about 60 kB
    work = tmp_path / "work"
    work.mkdir()
    _refused(work, _prepare(work, folder, "files"), "bomb.png", "not a readable image")
