"""Helpers of the end-to-end tests: the real dvc, git and snakemake in temporary repositories."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from transferlab.private import dvc_site_cache

from conftest import ROOT

ENV = {
    **os.environ,
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    "DVC_NO_ANALYTICS": "1",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}


def repo_env(cwd: Path) -> dict:
    """The environment of commands in a test repository: its own copy of the code first (the
    code is a dependency of every stage: an edit there must change what runs)."""
    src = Path(cwd) / "src"
    return {**ENV, "PYTHONPATH": str(src)} if (src / "transferlab").is_dir() else ENV


def sh(cwd: Path, *cmd: str) -> str:
    """Run a command in `cwd`; fail the test with the end of its output if it fails."""
    proc = subprocess.run(cmd, cwd=cwd, env=repo_env(cwd), capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def make_repo(path: Path, params: dict, setup=None) -> Path:
    """A git repository holding the project's pipeline files and `params` as params.yaml;
    `setup(path)` may add files (e.g. a data set's original files) before the first commit."""
    path.mkdir()
    for name in ("dvc.yaml", "Snakefile", "workflow", ".dvcignore", "src/transferlab", "data/sources"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pt"))
        else:
            shutil.copy(src, path / name)
    (path / "params.yaml").write_text(yaml.safe_dump(params))
    (path / ".gitignore").write_text("data/checkpoints/\ndata/measurements/\n.snakemake/\n__pycache__/\ndvc_plots/\n")
    if setup is not None:
        setup(path)
    sh(path, "git", "init", "-q")
    sh(path, "git", "config", "user.name", "transferlab tests")  # dvc exp run commits too
    sh(path, "git", "config", "user.email", "tests@transferlab.invalid")
    # DVC's databases in a private folder from the start, as `make setup` keeps them (site_cache.py)
    private = {**repo_env(path), "DVC_SITE_CACHE_DIR": str(dvc_site_cache())}
    subprocess.run(["dvc", "init", "-q"], cwd=path, env=private, check=True)
    sh(path, sys.executable, "workflow/site_cache.py")
    sh(path, "git", "add", "-A")
    sh(path, "git", "commit", "-qm", "pipeline")
    return path


def copy_repo(src: Path, dst: Path) -> Path:
    """A copy of a test repository where a pipeline already ran, for a test that changes it:
    its files copied, DVC's cache hard-linked (DVC never writes a cache file in place; the
    workspace's files are copies of it, so editing one leaves the cache and `src` alone)."""

    def copy(source: str, target: str) -> None:
        if f"{os.sep}.dvc{os.sep}cache{os.sep}" in source:
            os.link(source, target)
        else:
            shutil.copy2(source, target)

    shutil.copytree(src, dst, symlinks=True, copy_function=copy, ignore=shutil.ignore_patterns("tmp"))
    return dst


@dataclass(frozen=True)
class ResolvedStage:
    name: str
    cmd: str
    deps: tuple[str, ...]  # paths (params excluded)
    outs: tuple[str, ...]


def resolved_stages(root: Path) -> list[ResolvedStage]:
    """Every stage of dvc.yaml with its matrix entries resolved, as DVC reads them."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return [
            ResolvedStage(
                s.addressing.rsplit("dvc.yaml:", 1)[-1],  # (DVC prefixes the file when run from elsewhere)
                s.cmd,
                tuple(str(d.def_path) for d in s.deps if not isinstance(d, ParamsDependency)),
                tuple(str(o.def_path) for o in s.outs),
            )
            for s in repo.index.stages
            if s.cmd
        ]


def stages_run(log: str) -> set[str]:
    """The DVC stages a `dvc repro` / `dvc exp run` log says it ran."""
    return set(re.findall(r"Running stage '([^']+)'", log))
