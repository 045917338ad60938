"""The Snakemake adapter on a three-stage graph of shell commands (no studies, no torch): it
calls every DVC internal it depends on (the repository lock, `Repo.index` stages and graph,
`Stage.changed`, `save`, `commit`, `dump`), so a DVC release that changes them fails here in
seconds. DVC judges what is stale; a stage whose input came out the same is not rerun; what
ran is recorded in dvc.lock, and `dvc status` is clean afterwards."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import yaml

from conftest import ROOT
from pipeline import sh

GRAPH = {
    "stages": {
        # `a` writes the parity of params.yaml's x: changing x by 2 changes nothing below it.
        "a": {
            "cmd": "python -c \"import yaml; print(yaml.safe_load(open('params.yaml'))['x'] % 2)\" > a.txt",
            "params": ["x"],
            "outs": ["a.txt"],
        },
        "b": {
            "cmd": "cat a.txt a.txt > b.txt",
            "deps": ["a.txt"],
            "outs": ["b.txt"],
            "meta": {"resources": {"gpu": 1}},
        },
        "c": {"cmd": "cat b.txt > c.txt", "deps": ["b.txt"], "outs": ["c.txt"]},
    }
}


def _repo(path: Path) -> Path:
    path.mkdir()
    shutil.copy(ROOT / "Snakefile", path)
    shutil.copytree(ROOT / "workflow", path / "workflow", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "src/transferlab", path / "src/transferlab", ignore=shutil.ignore_patterns("__pycache__"))
    (path / "dvc.yaml").write_text(yaml.safe_dump(GRAPH, sort_keys=False))
    (path / "params.yaml").write_text("x: 1\nthreads: 1\n")
    (path / ".gitignore").write_text(".snakemake/\n__pycache__/\n")
    sh(path, "git", "init", "-q")
    sh(path, "dvc", "init", "-q")
    sh(path, sys.executable, "workflow/site_cache.py")
    sh(path, "git", "add", "-A")
    sh(path, "git", "commit", "-qm", "graph")
    return path


def _recorded(log: str) -> set[str]:
    return set(re.findall(r"transferlab: (\S+) recorded in dvc.lock", log))


def test_the_adapter_runs_what_dvc_finds_stale_and_records_it(tmp_path):
    repo = _repo(tmp_path / "repo")
    assert _recorded(sh(repo, "snakemake", "--cores", "2", "--resources", "gpu=1")) == {"a", "b", "c"}
    assert "up to date" in sh(repo, "dvc", "status") and (repo / "c.txt").read_text() == "1\n1\n"
    assert "Nothing to be done" in sh(repo, "snakemake", "-n")
    (repo / "params.yaml").write_text("x: 3\nthreads: 1\n")  # a new value, the same a.txt
    log = sh(repo, "snakemake", "--cores", "2", "--resources", "gpu=1")
    assert _recorded(log) == {"a"} and log.count("not rerun") == 2, log[-2000:]  # b, c: their input came out the same
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert lock["a"]["params"]["params.yaml"]["x"] == 3 and "up to date" in sh(repo, "dvc", "status")
    (repo / "params.yaml").write_text("x: 4\nthreads: 1\n")
    sh(repo, "snakemake", "--cores", "2", "--resources", "gpu=1")
    assert (repo / "c.txt").read_text() == "0\n0\n" and "up to date" in sh(repo, "dvc", "status")
