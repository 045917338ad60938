"""Helpers of the end-to-end tests: the real dvc, git and snakemake in temporary repositories."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import ROOT

ENV = {
    **os.environ,
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    "DVC_NO_ANALYTICS": "1",
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
}  # fmt: skip


def sh(cwd: Path, *cmd: str) -> str:
    """Run a command in `cwd`; fail the test with the end of its output if it fails."""
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def make_repo(path: Path, params: dict, setup=None) -> Path:
    """A git repository holding the project's pipeline files and `params` as params.yaml;
    `setup(path)` may add files (e.g. a data set's original files) before the first commit."""
    path.mkdir()
    for name in ("dvc.yaml", "Snakefile", "workflow", ".dvcignore"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, path / name)
    (path / "params.yaml").write_text(yaml.safe_dump(params))
    (path / ".gitignore").write_text("data/checkpoints/\n.snakemake/\n__pycache__/\n")
    if setup is not None:
        setup(path)
    sh(path, "git", "init", "-q")
    sh(path, "git", "config", "user.name", "transferlab tests")  # dvc exp run commits too
    sh(path, "git", "config", "user.email", "tests@transferlab.invalid")
    sh(path, "dvc", "init", "-q")
    sh(path, "git", "add", "-A")
    sh(path, "git", "commit", "-qm", "pipeline")
    return path


def stages_run(log: str) -> set[str]:
    """The DVC stages a `dvc repro` / `dvc exp run` log says it ran."""
    return set(re.findall(r"Running stage '([^']+)'", log))
