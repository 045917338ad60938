"""The warm server runs heavy commands exactly as the process itself would, passes their
output and exit code through, and takes a command down when its client is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import project, tiny_params

COMMAND = str(Path(sys.executable).parent / "transferlab")


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "TRANSFERLAB_PREFORK_DIR": str(tmp_path / "sockets"), "TRANSFERLAB_PREFORK_IDLE": "20"}


def _train(cwd: Path, env: dict, run_id: str, prefork: bool) -> subprocess.CompletedProcess:
    return subprocess.run([COMMAND, "train", run_id, "--device", "cpu"], cwd=cwd, env={**env, "TRANSFERLAB_PREFORK": "1" if prefork else "0"},
                          capture_output=True, text=True)  # fmt: skip


def _history(root: Path, run_id: str) -> list[dict]:
    records = json.loads((root / "data/runs" / run_id / "metrics.json").read_text())["history"]
    return [{k: v for k, v in r.items() if k != "images_per_s"} for r in records]


def test_a_warm_run_equals_a_run_in_its_own_process(tmp_path, env):
    for name, prefork in (("own", False), ("warm", True)):
        (tmp_path / name).mkdir()
        project(tmp_path / name, tiny_params(), "0")
        for run_id in ("s0/baseA/r0", "s0/A1B+/r0"):
            proc = _train(tmp_path / name, env, run_id, prefork)
            assert proc.returncode == 0 and f"{run_id}: top-1" in proc.stdout, proc.stderr
    assert list((tmp_path / "sockets").glob("*.sock"))  # the warm runs went through a server
    for run_id in ("s0/baseA/r0", "s0/A1B+/r0"):
        assert _history(tmp_path / "warm", run_id) == _history(tmp_path / "own", run_id)  # bit-identical on the CPU


def test_errors_and_exit_codes_pass_through(tmp_path, env):
    project(tmp_path, tiny_params(), "0")
    proc = _train(tmp_path, env, "s0/A9B/r0", True)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: s0/A9B/r0: not a run that params.yaml asks for (see transferlab plan)"


def test_killing_the_client_stops_its_command(tmp_path, env):
    project(tmp_path, tiny_params(**{"train.epochs": 200}), "0")
    client = subprocess.Popen([COMMAND, "train", "s0/baseA/r0", "--device", "cpu"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "data/checkpoints/s0/baseA/r0.pt"
    deadline = time.monotonic() + 60
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists(), "the command never got going"
    client.send_signal(signal.SIGTERM)
    client.wait()
    time.sleep(3)
    before = checkpoint.stat().st_mtime_ns
    time.sleep(2)  # an epoch of this net takes well under a second: a live command would have saved again
    assert checkpoint.stat().st_mtime_ns == before and not (tmp_path / "data/runs/s0/baseA/r0/metrics.json").exists()
