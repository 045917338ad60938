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


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save, atomically."""
    import torch  # here, so that table and plot code never imports torch

    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_json(obj: Any, path: Path) -> None:
    """Write JSON (sorted keys, indented), atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n"))


def git_revision(cwd: Path | None = None) -> str:
    """The current git commit (with '+dirty' when the tree has changes), or 'unknown'."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def provenance(revision: bool = True) -> dict[str, str]:
    """Package version, torch version and git revision, for every artifact. Intermediate data
    (the prepared data set, a split) leave the revision out: it changes with every commit and
    with every edit ("+dirty"), and would make DVC rerun everything downstream of them whenever
    they are remade, though their content is the same."""
    from importlib.metadata import version  # not torch.__version__: table-only stages never import torch

    found = {"transferlab_version": __version__, "torch_version": version("torch")}
    return {**found, "git_revision": git_revision()} if revision else found
