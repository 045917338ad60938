"""The committed baseline: dvc.lock, each study's metrics.json and its plot tables of the default
configuration are in git, so that `main` is a real row of `dvc exp show` and of `dvc plots diff`. They must describe the code and
params.yaml as they are (`make baseline` remakes them): here DVC finds nothing changed but
outputs that a fresh clone does not have."""

from __future__ import annotations

import json
import subprocess

import yaml

from conftest import ROOT
from pipeline import ENV

STUDIES = ("grid", "binary", "strategies", "size", "analysis")


def test_the_baseline_is_committed_and_holds_every_stage():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert "dvc.lock" in tracked and all(f"reports/{s}/metrics.json" in tracked for s in STUDIES)
    plot_tables = [
        next(iter(spec["y"]))
        for entry in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
        if isinstance(entry, dict)
        for spec in entry.values()
    ]
    assert plot_tables and set(plot_tables) <= set(tracked)
    stages = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    listed = subprocess.run(["dvc", "stage", "list", "--name-only"], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert set(stages) == set(listed.stdout.split())
    for study in STUDIES:
        metrics = json.loads((ROOT / f"reports/{study}/metrics.json").read_text())
        assert metrics and not [v for v in metrics.values() if isinstance(v, str)]


def test_the_baseline_matches_the_code_and_params():
    """Only missing outputs (and deps that are other stages' outputs) may differ: a changed
    param, command, code file or source file means `make baseline` was not run."""
    proc = subprocess.run(["dvc", "status", "--json"], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    stale = []
    for stage, changes in json.loads(proc.stdout or "{}").items():
        for change in changes:
            if not isinstance(change, dict):
                stale.append(f"{stage}: {change}")  # e.g. "changed command"
                continue
            for kind, entries in change.items():
                if kind == "changed params":
                    stale.append(f"{stage}: {entries}")
                    continue
                missing = ("deleted", "not in cache")  # a clone without the outputs
                stale += [f"{stage}: {path} {state}" for path, state in entries.items() if state not in missing]
    assert not stale, "dvc.lock is stale (run `make baseline`): " + "; ".join(stale[:5])
