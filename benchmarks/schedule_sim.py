"""Scheduling simulation: a grid's training jobs on N GPUs, dispatched as Snakemake does.

A job's duration is its training time plus a fixed cost, both from a measured pipeline run
(reports/bench/pipeline_time_dvc.json, written by benchmarks/pipeline_time.py): the median
training-loop seconds per kind of job (base, BnB, ..., random, the binary study's A' nets and
fine-tunings, each strategy and cut), and the median fixed cost of a run (command start to
its first step), plus `--device-init-s` for what a GPU adds per process (CUDA context and
cuDNN set-up; not measurable on this CPU-only machine: an assumption, given on the command
line and written into the output). The jobs are every training run params ask for, dispatched
greedily, in the graph's order, to the first free GPU as soon as their inputs exist (a
treatment, strategy or cut waits for its source base net, a fine-tuning for its A' net).
Reports, for N = 1, 8, 64 on the default pipeline and on a paper-sized one: makespan,
utilisation (busy GPU-seconds / (N x makespan)), efficiency (training seconds / (N x
makespan)), and the fixed cost's share of the busy time as a line of its own. From
gpu_bench.py's JSON (--durations reports/bench/gpu_bench.json) also the paper-sized grid at
the paper's budget per net (450,000 iterations of 256 images at 224 px), from the trainer's
images/s at 32 px scaled by pixels per image (an assumption, written into the output).

    python benchmarks/schedule_sim.py [--durations FILE] [--device-init-s 2.0]
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
GPU_COUNTS = (1, 8, 64)
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


def simulate(pipeline: list[Job], train_s: dict[str, float], fixed_s: float, gpus: int) -> dict:
    """Event-driven: whenever a GPU is free, start the first job in list order whose input run
    has finished (Snakemake starts ready jobs only); a job holds its GPU for its training time
    plus the fixed cost. Returns makespan, utilisation, efficiency and the fixed cost's share."""
    pending, running, done = list(pipeline), [], set()  # running: heap of (end time, run id)
    now, busy, training = 0.0, 0.0, 0.0
    while pending or running:
        ready = [j for j in pending if j.after is None or j.after in done]
        for job in ready[: gpus - len(running)]:
            pending.remove(job)
            heapq.heappush(running, (now + train_s[job.kind] + fixed_s, job.run_id))
            busy += train_s[job.kind] + fixed_s
            training += train_s[job.kind]
        now, run_id = heapq.heappop(running)
        done.add(run_id)
    return {
        "gpus": gpus,
        "jobs": len(pipeline),
        "makespan_s": round(now, 1),
        "utilisation": round(busy / (gpus * now), 3),
        "efficiency": round(training / (gpus * now), 3),
        "fixed_cost_share_of_busy": round(1 - training / busy, 3),
    }


def durations(measured_json: Path) -> tuple[dict[str, float], float]:
    """Median measured training seconds per kind of run, and the median fixed cost of a run,
    from pipeline_time.py's JSON or gpu_bench.py's (its grid slice)."""
    measured = json.loads(measured_json.read_text())
    measured = measured.get("grid_slice", measured)
    by_kind: dict[str, list[float]] = {}
    for run_id, secs in measured["run_train_seconds"].items():
        by_kind.setdefault(kind(run_id), []).append(secs)
    return {k: statistics.median(v) for k, v in by_kind.items()}, statistics.median(
        measured["run_startup_seconds"].values()
    )


# The paper's budget per net: 450,000 iterations of 256 images at 224 px (its solver files).
PAPER_IMAGES, PAPER_SIDE = 450_000 * 256, 224


def paper_budget_seconds(measured_json: Path) -> float | None:
    """Seconds one net of the paper's budget would train, from gpu_bench.py's trainer figure at
    32 px (compile off), scaled by the pixels per image (an assumption: a convnet's work grows
    with the input's area); None without a gpu_bench JSON."""
    measured = json.loads(measured_json.read_text())
    if "trainer" not in measured:
        return None
    trainer = measured["trainer"]
    per_image = (PAPER_SIDE / trainer["image_size"]) ** 2 / trainer["compile_off"]["trainer_images_per_s"]
    return PAPER_IMAGES * per_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--durations",
        type=Path,
        default=ROOT / "reports/bench/pipeline_time_dvc.json",
        help="pipeline_time.py's JSON, or gpu_bench.py's",
    )
    parser.add_argument(
        "--device-init-s",
        type=float,
        default=2.0,
        help="fixed cost a GPU adds per process (assumed: CUDA context, cuDNN)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "reports/bench/schedule_sim.json")
    args = parser.parse_args()
    train_s, fixed_s = durations(args.durations)
    fixed = fixed_s + args.device_init_s
    out = {
        "benchmark": "schedule_sim",
        "durations": str(args.durations),
        "train_seconds_per_kind": {k: round(v, 2) for k, v in train_s.items()},
        "fixed_cost_s": {
            "measured_median": round(fixed_s, 2),
            "device_init_assumed": args.device_init_s,
            "per_job": round(fixed, 2),
        },
        "grids": {},
    }
    assumed: set[str] = set()
    for name, params in GRIDS.items():
        grid = jobs(params)
        # a kind the measured run did not train (a grid slice: base nets and treatments only) is
        # taken to train as long as a base net (an assumption, named in the output)
        assumed |= {j.kind for j in grid} - set(train_s)
        seconds = {j.kind: train_s.get(j.kind, train_s["base"]) for j in grid}
        out["grids"][name] = [simulate(grid, seconds, fixed, n) for n in GPU_COUNTS]
    out["kinds_assumed_as_long_as_base"] = sorted(assumed)
    if (per_net := paper_budget_seconds(args.durations)) is not None:
        paper = jobs(GRIDS["paper_sized"])
        every_kind = {j.kind: per_net for j in paper}
        out["paper_budget"] = {
            "assumed": f"{PAPER_IMAGES} images per net at {PAPER_SIDE} px; seconds per image from the trainer at "
            "32 px times the ratio of pixels per image",
            "train_seconds_per_net": round(per_net, 1),
            "grid": [simulate(paper, every_kind, fixed, n) for n in GPU_COUNTS],
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
