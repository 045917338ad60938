"""The Snakemake adapter on a three-stage graph of shell commands (no studies, no torch): it
calls every DVC internal it depends on (the repository lock, `Repo.index` stages and graph,
`Stage.changed`, `save`, `commit`, `ProjectFile.dump_stages`), so a DVC release that changes them fails here in
seconds. DVC judges what is stale; a stage whose input came out the same is not rerun; what
ran is recorded in dvc.lock, and `dvc status` is clean afterwards."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from conftest import ROOT
from pipeline import repo_env, sh

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


SLOW_RECORDER = """import sys, time
sys.path.insert(0, "workflow")
import dvc_plan

_record = dvc_plan.Committer._record


def slow(self, batch):  # a submit host that takes {seconds} s for each record in dvc.lock
    time.sleep({seconds})
    _record(self, batch)


dvc_plan.Committer._record = slow


include: "Snakefile"  # (its `all`, named on the command line: an included default target is not)
"""


def _markers(repo: Path) -> Path:
    (folder,) = (repo / ".snakemake/transferlab").iterdir()
    return folder


def test_a_job_ends_before_its_stage_is_recorded_and_the_next_runs_meanwhile(tmp_path):
    """With a recorder that takes 5 s a stage, each job has ended (its slot free) before its stage
    is recorded, and the stage below starts from DVC's verdict while the one above is being
    recorded; all three are recorded in the end and `dvc status` is clean."""
    repo = _repo(tmp_path / "repo")
    (repo / "Snakefile.slow").write_text(SLOW_RECORDER.format(seconds=5))
    log = sh(repo, "snakemake", "all", "-s", "Snakefile.slow", "--cores", "2", "--resources", "gpu=1")
    assert _recorded(log) == {"a", "b", "c"} and "up to date" in sh(repo, "dvc", "status")
    folder = _markers(repo)
    t = {f.name: f.stat().st_mtime for f in folder.iterdir()}
    for rule in "abc":
        assert t[f"{rule}.ok"] < t[f"{rule}.committed"] - 4, rule  # the job had ended
    assert t["b.finished"] < t["a.committed"] and t["c.finished"] < t["b.committed"]
    engine = json.loads((folder / "engine.json").read_text())  # what benchmarks/pipeline_time.py reports
    assert engine["job_end_s_median"] < 1 < 5 < engine["record_lag_s_median"] <= engine["record_lag_s_max"]
    # a alone; b waited (RECORD_SPACING) and was recorded with c when nothing planned still ran
    assert engine["records"] == 2 and engine["recorded"] == 3
    parts = [engine[k] for k in ("hash_outputs_s", "verdicts_s", "records_s")]
    assert 10 <= engine["records_s"] and sum(parts) <= engine["commit_s"]


def test_a_recorder_killed_before_it_recorded_loses_nothing(tmp_path):
    """The submit host killed while its (slow) recorder had recorded only the first of the three
    stages that ran: DVC finds the other two stale, and the next run runs and records them."""
    repo = _repo(tmp_path / "repo")
    (repo / "Snakefile.slow").write_text(SLOW_RECORDER.format(seconds=10))
    cmd = ["snakemake", "all", "-s", "Snakefile.slow", "--cores", "2", "--resources", "gpu=1"]
    proc = subprocess.Popen(
        cmd, cwd=repo, env=repo_env(repo), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not list((repo / ".snakemake/transferlab").glob("*/c.finished")):
        assert time.monotonic() < deadline and proc.poll() is None, "the three jobs did not finish"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # (c finished while b was being recorded)
    proc.wait()
    assert set(yaml.safe_load((repo / "dvc.lock").read_text())["stages"]) == {"a"}
    assert "changed" in sh(repo, "dvc", "status")
    assert _recorded(sh(repo, "snakemake", "--cores", "2", "--resources", "gpu=1")) == {"b", "c"}
    assert "up to date" in sh(repo, "dvc", "status") and (repo / "c.txt").read_text() == "1\n1\n"


def test_dvc_reads_yaml_with_libyaml():
    """DVC reads params.yaml, dvc.lock and its run-cache with ruamel.yaml's safe loader, for every
    stage it records. ruamel.yaml 0.19 no longer installs its libyaml binding (pyproject names it):
    without it the pure-Python parser made recording a stage 7x slower."""
    from dvc.utils.serialize import parse_yaml
    from ruamel.yaml import YAML

    assert YAML(typ="safe").Parser.__module__ == "ruamel.yaml.clib._ruamel_yaml"  # (the pure one: ruamel.yaml.parser)
    assert parse_yaml("x: [1, on]\n", "params.yaml") == {"x": [1, "on"]}  # YAML 1.2's types, as before
