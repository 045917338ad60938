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


@needs_second_user
@pytest.mark.parametrize("workers", [0, 2])
def test_a_fifo_named_like_an_image_is_refused_without_waiting(tmp_path, shared_folder, workers):
    as_nobody("mkfifo", str(shared_folder / "train/cat/img9.png"))  # opening it would wait for a writer
    params = tiny_params(
        **{"data.dataset": "imagefolder", "data.image_folder": str(shared_folder), "data.workers": workers}
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    command = [str(Path(sys.executable).parent / "transferlab"), "prepare", "out/dataset.pt"]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    _refused(tmp_path, proc, "img9.png", "not a regular file")


@needs_second_user
@pytest.mark.parametrize("storage", ["tensor", "files"])
def test_one_image_under_two_classes_by_a_hard_link_or_a_copy_is_named(tmp_path, shared_folder, storage):
    dog = shared_folder / "train/dog/img0.png"
    as_nobody("ln", str(dog), str(shared_folder / "train/cat/hard.png"))  # a hard link: one inode, two names
    _refused(tmp_path, _prepare(tmp_path, shared_folder, storage), "hard.png", "the same file as", "dog/img0.png")
    as_nobody("rm", str(shared_folder / "train/cat/hard.png"))
    as_nobody("cp", str(dog), str(shared_folder / "train/cat/copy.png"))  # the same bytes, another file
    _refused(tmp_path, _prepare(tmp_path, shared_folder, storage), "copy.png", "the same bytes as", "dog/img0.png")


@needs_second_user
def test_a_link_to_a_file_outside_the_folder_is_refused_unless_allowed(tmp_path, shared_folder):
    """A private image of the victim's, reached through a link planted by another user, would be
    decoded into the prepared data set (which others may read)."""
    secret = tmp_path / "secret.png"
    (shared_folder / "train/dog/img1.JPEG").rename(secret)  # only ours now: tmp_path is private
    secret.chmod(0o600)
    as_nobody("ln", "-s", str(secret), str(shared_folder / "train/dog/img1.JPEG"))
    _refused(tmp_path, _prepare(tmp_path, shared_folder, "tensor"), "img1.JPEG", "outside", "data.outside_links")
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["data"]["outside_links"] = True  # the user's own choice: a subset made of links to elsewhere
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    command = Path(sys.executable).parent / "transferlab"
    proc = subprocess.run([str(command), "prepare", "out/dataset.pt"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@needs_second_user
def test_with_storage_files_a_file_changed_after_prepare_stops_train_in_one_line(tmp_path, shared_folder):
    """The files are read while training: swapped for a FIFO, truncated or changed after
    `prepare`, each stops `train` with one line and exit 2 (a finished run is not "up to date")."""
    from conftest import project

    params = tiny_params(
        **{
            "data.dataset": "imagefolder",
            "data.image_folder": str(shared_folder),
            "data.storage": "files",
            "data.workers": 0,
            "splits": ["classes"],
            "binary.equal_halves": False,
        }
    )
    params["split"]["classes_a"] = ["cat"]
    project(tmp_path, params, "classes")
    from typer.testing import CliRunner

    from transferlab.cli import app

    def train(*extra: str):
        args = ["train", "sclasses/baseB/r0", "--device", "cpu", "--root", str(tmp_path), *extra]
        return CliRunner().invoke(app, [*args, "--params", str(tmp_path / "params.yaml")])

    assert train().exit_code == 0
    image = shared_folder / "train/dog/img0.png"
    original = image.read_bytes()
    attacks = {
        "changed": lambda: as_nobody("sh", "-c", f"printf x >> {image}"),
        "truncated": lambda: as_nobody("truncate", "-s", "60", str(image)),
        "fifo": lambda: (as_nobody("rm", str(image)), as_nobody("mkfifo", str(image))),
    }
    for name, attack in attacks.items():
        attack()
        for extra in ((), ("--force",)):  # the finished run, and a run that reads the files
            result = train(*extra)
            lines = result.output.strip().splitlines()
            assert result.exit_code == 2 and len(lines) == 1, (name, result.output[-2000:])
            assert "img0.png" in lines[0], (name, lines[0])
        as_nobody("rm", "-f", str(image))
        image.write_bytes(original)
        image.chmod(0o666)
