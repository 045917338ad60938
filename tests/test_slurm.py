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
import pwd
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, tiny_params
from pipeline import ENV, make_repo, repo_env, sh
from second_user import SETPRIV, as_nobody, needs_second_user, shared_tmp_name

SCRIPT = ROOT / "workflow/slurm/local-cluster.sh"
SYSTEM_CONF = "/etc/slurm/slurm.conf"
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
    pytest.mark.skipif(
        bool(MISSING) and os.environ.get("TRANSFERLAB_REQUIRE_SLURM") != "1", reason=f"no SLURM here: {MISSING}"
    ),
]

# The tiny configuration with one layer and the optional studies off (every stage kind but
# strategies and cut: the data and training stages each a SLURM job with its own Snakemake start,
# the bookkeeping stages run by Snakemake on the submit host); base nets (and A' nets) train long
# enough to be cancelled between two epoch checkpoints.
PARAMS = tiny_params(
    **{
        "base.epochs": 60,
        "transfer.layers": [1],
        "binary.betas": [0.0],
        "strategies.names": [],
        "strategies.cut_layers": [],
        "analysis.binary_sources": False,
    }
)
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


def _script(action: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), action, *args], env=env or ENV, capture_output=True, text=True)


def _one_line_refusal(proc: subprocess.CompletedProcess, needle: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stdout + proc.stderr


@needs_second_user
def test_a_cluster_folder_made_by_another_user_is_refused_and_left_alone():
    with shared_tmp_name("transferlab-slurm-") as planted:
        as_nobody("mkdir", "-m", "777", str(planted))
        _one_line_refusal(
            _script("start", str(planted)), f"is owned by uid {pwd.getpwnam('nobody').pw_uid}, not by you"
        )
        assert list(planted.iterdir()) == [] and not os.path.lexists(SYSTEM_CONF)  # no key, no config, no link
    with shared_tmp_name("transferlab-slurm-") as link, shared_tmp_name("transferlab-slurm-") as theirs:
        as_nobody("mkdir", "-m", "700", str(theirs))
        as_nobody("ln", "-s", str(theirs), str(link))
        _one_line_refusal(_script("start", str(link)), "is a symbolic link")


@needs_second_user
def test_stop_kills_only_the_daemons_it_started():
    with shared_tmp_name("transferlab-slurm-") as folder:
        folder.mkdir(mode=0o700)
        (folder / ".local-cluster").touch()
        theirs = subprocess.Popen([*SETPRIV, "sleep", "60"])
        try:
            (folder / "slurmd.pid").write_text(f"{theirs.pid}\n")  # a pid file naming another user's process
            assert _script("stop", str(folder)).returncode == 0
            assert theirs.poll() is None and not folder.exists()
        finally:
            theirs.kill()
            theirs.wait()


def test_no_cluster_on_a_host_that_has_a_slurm_configuration(tmp_path):
    if os.path.lexists(SYSTEM_CONF):
        pytest.skip(f"{SYSTEM_CONF} exists on this host")
    Path(SYSTEM_CONF).parent.mkdir(parents=True, exist_ok=True)
    Path(SYSTEM_CONF).write_text("# the site's own\n")
    try:
        _one_line_refusal(_script("start", str(tmp_path / "c")), "already has a SLURM configuration")
        assert Path(SYSTEM_CONF).read_text() == "# the site's own\n" and not (tmp_path / "c").exists()
    finally:
        os.unlink(SYSTEM_CONF)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running one-node cluster with one (fake) GPU; the environment that reaches it."""
    # A fresh private folder from the script's mktemp (munged needs every folder above its
    # socket searchable by all, which pytest's own 0700 temp folders are not).
    env = {**ENV, "LOCAL_CLUSTER_GPUS": "1", "LOCAL_CLUSTER_PORT": str(_free_port_pair())}
    proc = subprocess.run([str(SCRIPT), "start"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = Path(re.search(r" in (\S+); source ", proc.stdout)[1])
    yield {**ENV, "SLURM_CONF": str(folder / "slurm.conf")}
    subprocess.run([str(SCRIPT), "stop", str(folder)], env=env, check=True)


def _profile(folder: Path, gpus: int = 0) -> Path:
    """The project's SLURM profile for the local cluster, as a user makes it (local_profile.py)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "workflow/slurm/local_profile.py"), str(folder), "--gpus", str(gpus)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return folder


def _code(repo: Path) -> dict:
    """The repository's own code first on the path (see pipeline.repo_env)."""
    return {"PYTHONPATH": repo_env(repo)["PYTHONPATH"]}


def _submissions(log: str) -> dict[str, list[str]]:
    """Rule -> SLURM job ids, from Snakemake's log."""
    found: dict[str, list[str]] = {}
    for job_id, rule in re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_([^/]+)/", log):
        found.setdefault(rule, []).append(job_id)
    return found


def _squeue_states(env: dict) -> dict[str, str]:
    out = subprocess.run(
        ["squeue", "--states=all", "-h", "-o", "%i|%T"], env=env, capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split("|") for line in out.split())


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The tiny configuration on the cluster (CPU form), with baseA's job cancelled mid-run."""
    root = tmp_path_factory.mktemp("slurm-run")
    repo = make_repo(root / "repo", PARAMS)
    profile = _profile(root / "profile")
    log_file = (
        root / "snakemake.log"
    )  # a file, not a pipe: nobody reads a pipe while we watch, and a full one blocks Snakemake
    with open(log_file, "w") as out:
        proc = subprocess.Popen(
            ["snakemake", "--workflow-profile", str(profile)],
            cwd=repo,
            env={**cluster, **_code(repo)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    checkpoint = repo / "data/checkpoints/s0/baseA/r0.pt"
    deadline = time.monotonic() + 600
    cancelled = None
    while cancelled is None and proc.poll() is None and time.monotonic() < deadline:
        if checkpoint.exists():  # baseA has finished an epoch: cancel its job
            jobs = subprocess.run(["squeue", "-h", "-o", "%i|%k"], env=cluster, capture_output=True, text=True).stdout
            cancelled = next(
                (
                    j
                    for j, comment in (line.split("|", 1) for line in jobs.split())
                    if f"rule_{CANCELLED_RULE}" in comment
                ),
                None,
            )
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
    plan = json.loads(next((repo / ".snakemake/transferlab").glob("*/plan.json")).read_text())
    stages = sh(repo, "dvc", "stage", "list", "--name-only").split()
    assert len(plan["stages"]) == len(stages)  # one rule per stage
    local = {s["rule"] for s in plan["stages"] if s["local"]}  # bookkeeping: Snakemake runs it itself
    assert set(submitted) == {s["rule"] for s in plan["stages"]} - local and "report_grid" in local
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
    timed = json.loads((repo / "data/measurements/s0/baseA/r0.json").read_text())  # a measurement, kept apart
    assert 1 <= timed["resumed_epochs"] < PARAMS["base"]["epochs"]  # resumed from an epoch checkpoint
    # The reference: the cancelled stage and what it reads, by `dvc repro`, uninterrupted. Each
    # stage it ran is recorded alike in both repositories: the same params and the same bytes of
    # every input and output (params.yaml `threads`, 1, under both engines). (That Snakemake's
    # whole graph gives dvc repro's bytes is test_engines's, on the same code.)
    reference = make_repo(tmp_path / "dvc", PARAMS)
    sh(reference, "dvc", "repro", "train-base@0-A-0")
    theirs = yaml.safe_load((reference / "dvc.lock").read_text())["stages"]
    ours = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert "train-base@0-A-0" in theirs and {name: ours.get(name) for name in theirs} == theirs


def test_a_job_starts_its_command_within_seconds(slurm_run):
    """The resolved stages are read once on the submit host: a job's own start-up (sbatch's
    start to the end of a trivial command) stays well under 10 s (it was about 40 s)."""
    repo, log, _, env = slurm_run
    job = _submissions(log)["download"][-1]  # (the embedded data set: nothing to fetch or check)
    started = subprocess.run(
        ["squeue", "--states=all", "-h", "-j", job, "-o", "%S"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    finished = next((repo / ".snakemake/transferlab").glob("*/download.finished")).stat().st_mtime
    elapsed = finished - time.mktime(time.strptime(started, "%Y-%m-%dT%H:%M:%S"))
    print(f"download job: {elapsed:.1f} s from SLURM's start to its command's end")
    assert 0 <= elapsed < 10, elapsed


def test_every_job_frees_its_allocation_after_its_command_and_the_benchmark_measures_it(slurm_run):
    """pipeline_time.py's SLURM figure on this run: for every job, the time from its command's end
    to slurmctld recording the job done. (That no job waits for the submit host's records is
    test_adapter's, with a deliberately slow recorder.)"""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from pipeline_time import slot_free_seconds

    repo, log, _, env = slurm_run
    controller_log = (Path(env["SLURM_CONF"]).parent / "log/slurmctld.log").read_text()
    markers = next((repo / ".snakemake/transferlab").glob("*/plan.json")).parent
    seconds = slot_free_seconds(log, controller_log, markers)
    assert set(seconds) == set(_submissions(log)), seconds
    print(f"job command end to allocation free: {sorted(seconds.values())} s")
    assert all(0 <= s < 30 for s in seconds.values()), seconds


def test_the_gpu_form_asks_for_the_gpu_type_and_partition(slurm_run, tmp_path):
    """GPU jobs ask for `--gpus=<model>:1` in the GPU partition; the others stay in `cpu`.
    (On the finished repository: the prepared data, its split (on the submit host) and one
    base net run again, nothing else.)"""
    repo, _, _, env = slurm_run
    profile = _profile(tmp_path / "profile", gpus=1)
    (repo / "data/prepared/dataset.pt").unlink()  # prepare stale (DVC's judgement), and what depends on it
    cmd = ["snakemake", "--workflow-profile", str(profile), "--until", "train_base_0_B_0"]
    proc = subprocess.run(cmd, cwd=repo, env={**env, **_code(repo)}, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    calls = dict(re.findall(r"sbatch call: .*?--comment '?rule_(\w+)'? (.*)", log))
    assert set(calls) == {"prepare", "train_base_0_B_0"}, calls
    assert "--gpus=fake:1" in calls["train_base_0_B_0"] and "-p gpu" in calls["train_base_0_B_0"]
    assert "--gpus" not in calls["prepare"] and "-p cpu" in calls["prepare"]
