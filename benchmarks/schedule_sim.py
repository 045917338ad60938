"""Scheduling simulation: a grid's training jobs on N GPUs, dispatched as Snakemake does.

Job durations come from a measured pipeline run (reports/bench/pipeline_time_dvc.json, written
by benchmarks/pipeline_time.py): the median seconds per treatment (base, BnB, ..., random),
process start included. Jobs are dispatched greedily, in the graph's order, to the first
free GPU as soon as their inputs exist (a treatment waits for its source base net; the
random control only for the split). Reports makespan and utilisation (busy GPU-seconds /
(N x makespan)) for N = 1, 2, 4, 8, on the default grid and on a paper-sized one.

    python benchmarks/schedule_sim.py
"""

from __future__ import annotations

import argparse
import heapq
import json
import statistics
from pathlib import Path

from transferlab.config import Params, TransferConfig
from transferlab.runs import RunSpec, planned_runs

ROOT = Path(__file__).resolve().parents[1]
GRIDS = {
    "default": Params(),
    # Two random splits, both directions (A to B and B to A), n = 1..7: 144 nets, the size
    # of the paper's grid (163 networks).
    "paper_sized": Params(splits=[0, 1], transfer=TransferConfig(targets=["A", "B"])),
}


def simulate(runs: list[RunSpec], seconds: dict[str, float], gpus: int) -> dict:
    """Event-driven: whenever a GPU is free, start the first job in list order whose source
    base net has finished (Snakemake starts ready jobs only); returns makespan and utilisation."""
    pending, running, done = list(runs), [], {}  # running: heap of (end time, run)
    now, busy = 0.0, 0.0
    while pending or running:
        ready = [r for r in pending if r.source_base is None or r.source_base in done]
        for run in ready[: gpus - len(running)]:
            pending.remove(run)
            heapq.heappush(running, (now + seconds[run.treatment], run))
            busy += seconds[run.treatment]
        now, run = heapq.heappop(running)
        done[run] = now
    return {"gpus": gpus, "jobs": len(runs), "makespan_s": round(now, 1), "utilisation": round(busy / (gpus * now), 3)}


def durations(pipeline_json: Path) -> dict[str, float]:
    """Median measured seconds per treatment (training plus the process's fixed cost)."""
    measured = json.loads(pipeline_json.read_text())["run_seconds"]
    by_treatment: dict[str, list[float]] = {}
    for run_id, secs in measured.items():
        by_treatment.setdefault(RunSpec.parse(run_id).treatment, []).append(secs)
    return {t: statistics.median(v) for t, v in by_treatment.items()}


def order_for_dispatch(runs: list[RunSpec]) -> list[RunSpec]:
    """Bases first, then the random controls (they need no base), then the transfers."""
    return sorted(runs, key=lambda r: (not r.is_base, r.source != "R"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durations", type=Path, default=ROOT / "reports/bench/pipeline_time_dvc.json")
    parser.add_argument("--out", type=Path, default=ROOT / "reports/bench/schedule_sim.json")
    args = parser.parse_args()
    secs = durations(args.durations)
    out = {"benchmark": "schedule_sim", "seconds_per_treatment": {k: round(v, 2) for k, v in secs.items()}, "grids": {}}
    for name, params in GRIDS.items():
        runs = order_for_dispatch(planned_runs(params))
        out["grids"][name] = [simulate(runs, secs, n) for n in (1, 2, 4, 8)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
