"""Wall time of the whole default pipeline from a clean state, its efficiency, and the fixed
cost per run.

Clones the project (its committed state) into a temporary folder, runs `dvc repro` (or
snakemake) there with this interpreter's environment, and writes
reports/bench/pipeline_time_<engine>.json: total seconds; efficiency, the sum over runs of
the time in their training loops (steps, evaluations, epoch checkpoints) divided by the
pipeline's wall time; and per run the fixed cost (command start to first optimiser step),
the training time and the command's whole time.

    python benchmarks/pipeline_time.py [--engine dvc|snakemake] [--prefork/--no-prefork] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone")
    parser.add_argument("--engine", choices=["dvc", "snakemake"], default="dvc", help="dvc repro, or snakemake with --jobs in parallel")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel jobs (snakemake)")
    parser.add_argument("--prefork", action=argparse.BooleanOptionalAction, default=True, help="heavy commands in the warm server (the default)")
    parser.add_argument("--out", type=Path, default=None, help="default: reports/bench/pipeline_time_<engine>[_no_prefork].json")
    args = parser.parse_args()
    args.out = args.out or ROOT / f"reports/bench/pipeline_time_{args.engine}{'' if args.prefork else '_no_prefork'}.json"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    env["TRANSFERLAB_PREFORK"] = "1" if args.prefork else "0"
    work = Path(tempfile.mkdtemp(prefix="transferlab-bench-"))
    clone = work / "project"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    t0 = time.perf_counter()
    env["PYTHONPATH"] = str(clone / "src")  # the cloned code, not an editable install elsewhere
    slots = 1 if args.engine == "dvc" else args.jobs
    if args.engine == "dvc":
        cmd = ["dvc", "repro"]
    else:  # one thread per job: the jobs, not the threads, share the cores
        cmd = ["snakemake", "--cores", str(args.jobs), "--resources", f"gpu={args.jobs}"]
        env["OMP_NUM_THREADS"] = "1"
    log = subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True)
    total = time.perf_counter() - t0
    if log.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{log.stderr[-2000:]}")
    runs = [m for p in (clone / "data/runs").rglob("metrics.json") if "run_id" in (m := json.loads(p.read_text()))]
    startups = [r["startup_s"] for r in runs if r.get("startup_s") is not None]
    result = {
        "benchmark": "pipeline_time",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "git_revision": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip(),
        "command": " ".join(cmd),
        "prefork": args.prefork,
        "total_s": round(total, 1),
        # training-loop seconds over slot-seconds: wall time times the jobs run side by side
        "efficiency": round(sum(r["train_s"] for r in runs) / (total * slots), 3),
        "parallel_jobs": slots,
        "train_loop_s_sum": round(sum(r["train_s"] for r in runs), 1),
        "runs": len(runs),
        "startup_s_median": round(statistics.median(startups), 2) if startups else None,
        "startup_s_max": round(max(startups), 2) if startups else None,
        "run_wall_s_median": round(statistics.median(r["wall_time_s"] for r in runs), 2),
        "run_wall_s_sum": round(sum(r["wall_time_s"] for r in runs), 1),
        # Per run, for benchmarks/schedule_sim.py: the command's whole time (start to metrics
        # written), its training loop, and its fixed cost (start to the first optimiser step).
        "run_seconds": {r["run_id"]: round(r["process_s"], 2) for r in runs if r.get("process_s")},
        "run_train_seconds": {r["run_id"]: round(r["train_s"], 2) for r in runs},
        "run_startup_seconds": {r["run_id"]: round(r["startup_s"], 2) for r in runs if r.get("startup_s") is not None},
        "headline": json.loads((clone / "reports/metrics.json").read_text()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if not args.keep:
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
