"""Atomic writes and provenance: every artifact describes itself and is never half-written."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from transferlab import __version__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it over `path` only if the block succeeds, its
    contents flushed to disk first (a crash never publishes a half-written file).

    The file gets the modes of any new file (0666 less the umask), not mkstemp's private 0600:
    results on a shared cluster account or group must be readable by the others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    try:
        yield Path(tmp)
        _fsync_file(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temp folder beside `path`; put it in place of `path` only if the block succeeds.

    Its files are flushed first, and the old folder is moved aside before the new one is
    renamed in, then removed: a crash in between leaves the old folder (aside), never neither."""
    import shutil

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(0o777 & ~_umask())  # as a new folder, not mkdtemp's private 0700
    aside = None
    try:
        yield tmp
        for file in (p for p in tmp.rglob("*") if p.is_file() and not p.is_symlink()):
            _fsync_file(file)
        if path.exists() or path.is_symlink():
            aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, aside / path.name)
        try:
            os.replace(tmp, path)
        except OSError:
            if aside is not None:
                os.replace(aside / path.name, path)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Write a file through `write(tmp_path)`, then rename it into place."""
    with atomic_path(path) as tmp:
        write(tmp)


def torch_bytes(obj: Any) -> bytes:
    """torch.save's bytes of `obj`, the same for the same object: saved into a buffer, the zip's
    root folder is always "archive" (given a path, torch names it after the temp file)."""
    import io

    import torch  # here, so that table and plot code never imports torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save, atomically, with the same bytes for the same object."""
    data = torch_bytes(obj)
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def save_npz(path: Path, arrays: dict) -> None:
    """np.savez with the same bytes for the same arrays (numpy stamps each member with the time)."""
    import zipfile

    import numpy as np

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(member, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)


def atomic_json(obj: Any, path: Path) -> None:
    """Write JSON (sorted keys, indented), atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n"))


# Files that a pipeline run rewrites itself (the committed baseline): a change there is not a
# change of what ran, so it does not make a revision "+dirty".
PIPELINE_WRITES = (
    ":(top,exclude)dvc.lock",
    ":(top,exclude,glob)reports/*/metrics.json",
    ":(top,exclude,glob)reports/*/plots/**",
)


def git_revision(cwd: Path | None = None) -> str:
    """The commit a run ran from ('+dirty' when tracked files other than those the pipeline
    itself rewrites have changes), or 'unknown'."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *PIPELINE_WRITES],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def provenance() -> dict[str, str]:
    """Package and torch versions, for every artifact. Not the git revision: it changes with
    every commit, and a file that stages depend on must be the same bytes when remade from the
    same code, params and inputs (the revision is a measurement: see measurements.py)."""
    from importlib.metadata import version  # not torch.__version__: table-only stages never import torch

    return {"transferlab_version": __version__, "torch_version": version("torch")}
