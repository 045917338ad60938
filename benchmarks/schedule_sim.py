"""Scheduling simulation: a grid's training jobs on N GPUs, dispatched as Snakemake does.

Job durations come from a measured pipeline run (reports/bench/pipeline_time_dvc.json, written
by benchmarks/pipeline_time.py): the median seconds per kind of job (base, BnB, ..., random,
the binary study's A' nets and fine-tunings, each strategy and cut), process start included.
The jobs are every training run params ask for: the grid, the binary study, the strategies
and the cut study. They are dispatched greedily, in the graph's order, to the first free GPU
as soon as their inputs exist (a treatment, strategy or cut waits for its source base net,
a fine-tuning for its A' net; the random control and the A' nets only for the split).
Reports makespan and utilisation (busy GPU-seconds / (N x makespan)) for N = 1, 2, 4, 8, on
the default pipeline and on a paper-sized one.

    python benchmarks/schedule_sim.py
"""

from __future__ import annotations

import argparse
import heapq
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from transferlab.config import Params, TransferConfig
from transferlab.runs import input_run, parse_run, planned_all

ROOT = Path(__file__).resolve().parents[1]
GRIDS = {
    "default": Params(),
    # Two random splits, both directions (A to B and B to A), n = 1..7: 144 nets, the size
    # of the paper's grid (163 networks), plus the default studies on both splits.
    "paper_sized": Params(splits=[0, 1], transfer=TransferConfig(targets=["A", "B"])),
}


@dataclass(frozen=True)
class Job:
    """One training run: its id, the kind that sets its duration, the run it waits for."""

    run_id: str
    kind: str
    after: str | None


def kind(run_id: str) -> str:
    """The kind of a run id: a grid treatment (base, AnB+, ...), binaryA/binaryB_f<k>, a strategy
    with its images per class, or a cut at n."""
    return parse_run(run_id).kind


def jobs(params: Params) -> list[Job]:
    """Every training run of the pipeline, bases first, then what needs no base, then the rest."""
    out = [Job(str(r), r.kind, str(input_run(r)) if input_run(r) else None) for r in planned_all(params)]
    return sorted(out, key=lambda j: (j.kind != "base", j.after is not None))


def simulate(pipeline: list[Job], seconds: dict[str, float], gpus: int) -> dict:
    """Event-driven: whenever a GPU is free, start the first job in list order whose input run
    has finished (Snakemake starts ready jobs only); returns makespan and utilisation."""
    pending, running, done = list(pipeline), [], set()  # running: heap of (end time, run id)
    now, busy = 0.0, 0.0
    while pending or running:
        ready = [j for j in pending if j.after is None or j.after in done]
        for job in ready[: gpus - len(running)]:
            pending.remove(job)
            heapq.heappush(running, (now + seconds[job.kind], job.run_id))
            busy += seconds[job.kind]
        now, run_id = heapq.heappop(running)
        done.add(run_id)
    return {"gpus": gpus, "jobs": len(pipeline), "makespan_s": round(now, 1), "utilisation": round(busy / (gpus * now), 3)}


def durations(pipeline_json: Path) -> dict[str, float]:
    """Median measured seconds per kind of run (training plus the process's fixed cost)."""
    measured = json.loads(pipeline_json.read_text())["run_seconds"]
    by_kind: dict[str, list[float]] = {}
    for run_id, secs in measured.items():
        by_kind.setdefault(kind(run_id), []).append(secs)
    return {k: statistics.median(v) for k, v in by_kind.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durations", type=Path, default=ROOT / "reports/bench/pipeline_time_dvc.json")
    parser.add_argument("--out", type=Path, default=ROOT / "reports/bench/schedule_sim.json")
    args = parser.parse_args()
    secs = durations(args.durations)
    out = {"benchmark": "schedule_sim", "seconds_per_treatment": {k: round(v, 2) for k, v in secs.items()}, "grids": {}}
    for name, params in GRIDS.items():
        out["grids"][name] = [simulate(jobs(params), secs, n) for n in (1, 2, 4, 8)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
