"""The SLURM path for real: a one-node SLURM cluster on localhost (workflow/slurm/local-cluster.sh),
the tiny configuration through `snakemake --workflow-profile` with the project's SLURM profile
(its partition and resources set for the local cluster, no account), one training job
cancelled mid-run with `scancel`, and the results compared with `dvc repro` of the same
configuration.

Needs Debian's slurm-wlm and munge and root (the script links /etc/slurm/slurm.conf); skipped
without them unless TRANSFERLAB_REQUIRE_SLURM=1 (.ci/run sets it after installing them)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, tiny_params
from pipeline import ENV, make_repo, sh

SCRIPT = ROOT / "workflow/slurm/local-cluster.sh"
MISSING = [t for t in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel") if not shutil.which(t)]
try:
    import snakemake_executor_plugin_slurm  # noqa: F401
except ImportError:
    MISSING.append("snakemake-executor-plugin-slurm")
if os.geteuid() != 0:
    MISSING.append("root")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.slurm,
    pytest.mark.skipif(bool(MISSING) and os.environ.get("TRANSFERLAB_REQUIRE_SLURM") != "1", reason=f"no SLURM here: {MISSING}"),
]

# The tiny configuration with one layer and the optional studies off (every stage kind but
# strategies and cut: 17 jobs, each a SLURM job with its own Snakemake start); base nets (and
# A' nets) train long enough to be cancelled between two epoch checkpoints.
PARAMS = tiny_params(**{"base.epochs": 60, "transfer.layers": [1], "binary.betas": [0.0], "strategies.names": [], "strategies.cut_layers": [],
                        "analysis.binary_sources": False})  # fmt: skip
CANCELLED_RULE = "train_base_0_A_0"


def _free_port_pair() -> int:
    """A port p with p and p + 1 free (slurmctld, slurmd)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no two consecutive free ports")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running one-node cluster with one (fake) GPU; the environment that reaches it."""
    folder = tmp_path_factory.mktemp("cluster")
    env = {**ENV, "LOCAL_CLUSTER_GPUS": "1", "LOCAL_CLUSTER_PORT": str(_free_port_pair())}
    proc = subprocess.run([str(SCRIPT), "start", str(folder)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield {**ENV, "SLURM_CONF": str(folder / "slurm.conf")}
    subprocess.run([str(SCRIPT), "stop", str(folder)], env=env, check=True)


def _profile(folder: Path, config: dict) -> Path:
    """The project's SLURM profile with the local cluster's partition, no account, and small jobs."""
    profile = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())
    profile["default-resources"].update(slurm_partition="cpu", mem_mb=1000, runtime=30)
    del profile["default-resources"]["slurm_account"]
    profile["config"].update(config)
    profile |= {
        "slurm-no-account": True,  # no slurmdbd, so no accounts
        "slurm-status-command": "squeue",  # no slurmdbd, so no sacct; squeue keeps ended jobs for MinJobAge
        "slurm-init-seconds-before-status-checks": 2,
        "verbose": True,  # logs each sbatch call
    }
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def _submissions(log: str) -> dict[str, list[str]]:
    """Rule -> SLURM job ids, from Snakemake's log."""
    found: dict[str, list[str]] = {}
    for job_id, rule in re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_([^/]+)/", log):
        found.setdefault(rule, []).append(job_id)
    return found


def _squeue_states(env: dict) -> dict[str, str]:
    out = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i|%T"], env=env, capture_output=True, text=True, check=True).stdout
    return dict(line.split("|") for line in out.split())


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The tiny configuration on the cluster (CPU form), with baseA's job cancelled mid-run."""
    root = tmp_path_factory.mktemp("slurm-run")
    repo = make_repo(root / "repo", PARAMS)
    profile = _profile(root / "profile", {"threads": 1, "gpus": 0})
    log_file = root / "snakemake.log"  # a file, not a pipe: nobody reads a pipe while we watch, and a full one blocks Snakemake
    with open(log_file, "w") as out:
        proc = subprocess.Popen(["snakemake", "--workflow-profile", str(profile)], cwd=repo, env=cluster, stdout=out, stderr=subprocess.STDOUT)
    checkpoint = repo / "data/checkpoints/s0/baseA/r0.pt"
    deadline = time.monotonic() + 600
    cancelled = None
    while cancelled is None and proc.poll() is None and time.monotonic() < deadline:
        if checkpoint.exists():  # baseA has finished an epoch: cancel its job
            jobs = subprocess.run(["squeue", "-h", "-o", "%i|%k"], env=cluster, capture_output=True, text=True).stdout
            cancelled = next((j for j, comment in (line.split("|", 1) for line in jobs.split()) if f"rule_{CANCELLED_RULE}" in comment), None)
            if cancelled:
                subprocess.run(["scancel", cancelled], env=cluster, check=True)
        time.sleep(0.05)
    proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    log = log_file.read_text()
    assert proc.returncode == 0, log[-4000:]
    return repo, log, cancelled, cluster


def test_every_job_went_through_sbatch_and_the_graph_finished(slurm_run):
    repo, log, cancelled, env = slurm_run
    submitted = _submissions(log)
    stages = sh(repo, "dvc", "stage", "list", "--name-only").split()
    assert len(submitted) == len(stages)  # one rule per stage, each submitted
    states = _squeue_states(env)
    assert cancelled is not None and states[cancelled] == "CANCELLED"
    assert submitted[CANCELLED_RULE] == [cancelled, submitted[CANCELLED_RULE][-1]]  # submitted again by `retries`
    for rule, ids in submitted.items():
        assert states[ids[-1]] == "COMPLETED", (rule, ids, states)
    assert (repo / "reports/figures/transfer.png").is_file()
    assert "up to date" in sh(repo, "dvc", "status")


def test_the_cpu_form_asks_for_no_gpu(slurm_run):
    _, log, _, _ = slurm_run
    calls = re.findall(r"sbatch call: (.*)", log)
    assert calls and not [c for c in calls if "--gpus" in c or "--gres" in c]
    assert all("--cpus-per-task=1" in c and "-p cpu" in c for c in calls), calls[0]


def test_the_cancelled_run_resumed_and_results_equal_dvc_repro(slurm_run, tmp_path):
    repo, _, _, _ = slurm_run
    metrics = json.loads((repo / "data/runs/s0/baseA/r0/metrics.json").read_text())
    assert 1 <= metrics["resumed_epochs"] < PARAMS["base"]["epochs"]  # resumed from an epoch checkpoint
    reference = make_repo(tmp_path / "dvc", PARAMS)
    # Snakemake runs each job with OMP_NUM_THREADS = its threads (1); the sums inside a
    # convolution depend on the thread count, so the reference uses the same.
    subprocess.run(["dvc", "repro"], cwd=reference, env={**ENV, "OMP_NUM_THREADS": "1"}, check=True, capture_output=True)
    ours, theirs = (pd.read_parquet(r / "reports/results.parquet") for r in (repo, reference))
    assert sorted(ours.run_id.dropna()) == sorted(theirs.run_id.dropna()) and len(ours) == len(theirs)
    for column in ("final_top1", "best_top1", "topk_mean_top1", "top1", "value"):  # bit-identical
        assert np.array_equal(ours[column].to_numpy(), theirs[column].to_numpy(), equal_nan=True), column


def test_the_gpu_form_asks_for_the_gpu_type_and_partition(slurm_run, tmp_path):
    """GPU jobs ask for `--gpus=<model>:1` in the GPU partition; the others stay in `cpu`.
    (On the finished repository: the split and one base net run again, nothing else.)"""
    repo, _, _, env = slurm_run
    profile = _profile(tmp_path / "profile", {"threads": 1, "gpus": 1, "gpu_model": "fake", "gpu_partition": "gpu"})
    cmd = ["snakemake", "--workflow-profile", str(profile), "--forcerun", "split_0", "--until", "train_base_0_B_0"]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    calls = dict(re.findall(r"sbatch call: .*?--comment '?rule_(\w+)'? (.*)", log))
    assert set(calls) == {"split_0", "train_base_0_B_0"}, calls
    assert "--gpus=fake:1" in calls["train_base_0_B_0"] and "-p gpu" in calls["train_base_0_B_0"]
    assert "--gpus" not in calls["split_0"] and "-p cpu" in calls["split_0"]
