"""Wall time of the whole default pipeline from a clean state, its efficiency, and the fixed
cost per run.

Clones the project (its committed state) into a temporary folder, runs `dvc repro` (or
snakemake) there with this interpreter's environment, and writes
reports/bench/pipeline_time_<engine>.json: total seconds; efficiency, the sum over runs of
the time in their training loops (steps, evaluations, epoch checkpoints) divided by the
pipeline's wall time; and per run the fixed cost (command start to first optimiser step),
the training time and the command's whole time. Under snakemake, also the engine's own
bookkeeping: asking DVC what is stale (on the submit host, before any job) and recording each
finished stage in dvc.lock (a thread beside the jobs), from .snakemake/transferlab/*/engine.json,
and the time from a stage's command ending to its job's end (its slot free) and to its record.
`--engine slurm` runs snakemake with the SLURM profile on a one-node cluster on this machine
(workflow/slurm/local-cluster.sh, started and stopped here: needs root, slurm-wlm and munge),
and adds the time from each job's command ending to SLURM freeing its allocation (slurmctld's
log, in milliseconds). `--set KEY=VALUE` (repeatable, YAML values) runs another configuration, e.g.
`--set 'splits=[0,1,2,mn]'`.

    python benchmarks/pipeline_time.py [--engine dvc|snakemake|slurm] [--set KEY=VALUE ...] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def local_cluster(env: dict):
    """A one-node SLURM cluster (local-cluster.sh) for the run; its folder, stopped after."""
    script = ROOT / "workflow/slurm/local-cluster.sh"
    started = subprocess.run([str(script), "start"], env=env, capture_output=True, text=True)
    if started.returncode != 0:
        sys.exit(f"local-cluster.sh start failed: {started.stderr.strip()}")
    folder = Path(re.search(r" in (\S+); source ", started.stdout)[1])
    try:
        yield folder
    finally:
        subprocess.run([str(script), "stop", str(folder)], env=env, check=True)


def slot_free_seconds(snakemake_log: str, slurmctld_log: str, markers: Path) -> dict[str, float]:
    """Per rule run as a SLURM job: seconds from its command's end (the `ended_at` of its
    finished marker, written by stage_job.py) to slurmctld recording the job done (its
    allocation free), from the controller's log; a job submitted again counts by its last."""
    jobs = {
        rule: job
        for job, rule in re.findall(
            r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_([^/]+)/", snakemake_log
        )
    }
    done = {
        job: datetime.fromisoformat(stamp).timestamp()
        for stamp, job in re.findall(r"^\[(\S+)\] _job_complete: JobId=(\d+) done$", slurmctld_log, re.M)
    }
    seconds = {}
    for rule, job in jobs.items():
        marker = markers / f"{rule}.finished"
        if job in done and marker.is_file():
            seconds[rule] = round(done[job] - json.loads(marker.read_text())["ended_at"], 3)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone")
    parser.add_argument(
        "--engine",
        choices=["dvc", "snakemake", "slurm"],
        default="dvc",
        help="dvc repro; snakemake with --jobs in parallel; snakemake on a one-node SLURM cluster",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel jobs (snakemake)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a params.yaml value (dotted key, YAML value)"
    )
    parser.add_argument("--out", type=Path, default=None, help="default: reports/bench/pipeline_time_<engine>.json")
    args = parser.parse_args()
    args.out = args.out or ROOT / f"reports/bench/pipeline_time_{args.engine}.json"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
    }
    work = Path(tempfile.mkdtemp(prefix="transferlab-bench-"))
    clone = work / "project"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    if args.set:
        import yaml

        params = yaml.safe_load((clone / "params.yaml").read_text())
        for item in args.set:
            key, value = item.split("=", 1)
            *sections, name = key.split(".")
            target = params
            for section in sections:
                target = target[section]
            target[name] = yaml.safe_load(value)
        (clone / "params.yaml").write_text(yaml.safe_dump(params))
    env["PYTHONPATH"] = str(clone / "src")  # the cloned code, not an editable install elsewhere
    slot_free = None
    if args.engine == "dvc":
        cmd = ["dvc", "repro"]
    elif args.engine == "snakemake":  # each job with params.yaml's `threads`: cores / threads jobs side by side
        cmd = ["snakemake", "--cores", str(args.jobs), "--resources", f"gpu={args.jobs}"]
    else:
        sys.path.insert(0, str(ROOT / "workflow/slurm"))
        from local_profile import write_local_profile

        cmd = ["snakemake", "--workflow-profile", str(write_local_profile(work / "profile"))]
    with local_cluster(env) if args.engine == "slurm" else contextlib.nullcontext() as cluster:
        if cluster:
            env["SLURM_CONF"] = str(cluster / "slurm.conf")
        t0 = time.perf_counter()  # the run alone (not a cluster's start)
        log = subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True)
        total = time.perf_counter() - t0
        if log.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{log.stderr[-2000:]}")
        if cluster:
            markers = next((clone / ".snakemake/transferlab").glob("*/plan.json")).parent
            slurmctld = (cluster / "log/slurmctld.log").read_text()
            slot_free = slot_free_seconds(log.stdout + log.stderr, slurmctld, markers)
    # Each run's timings: its measurements file (kept apart from the metrics that stages depend on).
    runs = [json.loads(p.read_text()) for p in (clone / "data/measurements").rglob("*.json")]
    metrics = [m for p in (clone / "data/runs").rglob("metrics.json") if "run_id" in (m := json.loads(p.read_text()))]
    threads = metrics[0]["threads"] if metrics else 1
    slots = max(1, args.jobs // threads) if args.engine != "dvc" else 1
    engine = next((json.loads(p.read_text()) for p in (clone / ".snakemake/transferlab").glob("*/engine.json")), None)
    startups = [r["startup_s"] for r in runs if r.get("startup_s") is not None]
    result = {
        "benchmark": "pipeline_time",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        # the clone's: the revision that ran (the checkout may have moved on during a long run)
        "git_revision": subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True
        ).stdout.strip(),
        "command": " ".join(cmd),
        "set": args.set,
        "threads_per_run": threads,
        "total_s": round(total, 1),
        # training-loop seconds over slot-seconds: wall time times the jobs run side by side
        "efficiency": round(sum(r["train_s"] for r in runs) / (total * slots), 3),
        "parallel_jobs": slots,
        "train_loop_s_sum": round(sum(r["train_s"] for r in runs), 1),
        "runs": len(runs),
        # snakemake's own bookkeeping: asking DVC (before any job), recording in dvc.lock (beside the jobs)
        "engine_plan_s": engine["plan_s"] if engine else None,
        "engine_commit_s": engine["commit_s"] if engine else None,
        "engine_share_of_wall": round((engine["plan_s"] + engine["commit_s"]) / total, 3) if engine else None,
        # the recorder's parts: hashing outputs, DVC's verdicts for the stages below, writing dvc.lock
        "engine_commit_parts_s": {k: engine.get(k) for k in ("hash_outputs_s", "verdicts_s", "records_s")}
        if engine
        else None,
        "engine_records": engine.get("records") if engine else None,
        # from a stage's command ending: to its job's end (its slot free), and to its record in dvc.lock
        # (under slurm the submit host's Snakemake touches that marker when it polls: see slurm_slot_free_s)
        "job_end_s_median": engine.get("job_end_s_median") if engine and args.engine == "snakemake" else None,
        "record_lag_s_median": engine.get("record_lag_s_median") if engine else None,
        "record_lag_s_max": engine.get("record_lag_s_max") if engine else None,
        # on SLURM: from a job's command ending to slurmctld freeing its allocation
        "slurm_jobs": len(slot_free) if slot_free else None,
        "slurm_slot_free_s_median": round(statistics.median(slot_free.values()), 3) if slot_free else None,
        "slurm_slot_free_s_max": max(slot_free.values()) if slot_free else None,
        "startup_s_median": round(statistics.median(startups), 2) if startups else None,
        "startup_s_max": round(max(startups), 2) if startups else None,
        "run_wall_s_median": round(statistics.median(r["wall_time_s"] for r in runs), 2),
        "run_wall_s_sum": round(sum(r["wall_time_s"] for r in runs), 1),
        # Per run, for benchmarks/schedule_sim.py: the command's whole time (start to metrics
        # written), its training loop, and its fixed cost (start to the first optimiser step).
        "run_seconds": {r["run_id"]: round(r["process_s"], 2) for r in runs if r.get("process_s")},
        "run_train_seconds": {r["run_id"]: round(r["train_s"], 2) for r in runs},
        "run_startup_seconds": {r["run_id"]: round(r["startup_s"], 2) for r in runs if r.get("startup_s") is not None},
        "headline": {
            p.parent.name: json.loads(p.read_text()) for p in sorted((clone / "reports").glob("*/metrics.json"))
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if not args.keep:
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
