"""One Snakemake job: run a planned DVC stage's command (if it still needs to run), then end:
the submit host records the stage in dvc.lock afterwards, while the job's cores and GPU go to
the next job.

    python workflow/stage_job.py PLAN_FILE RULE
    python workflow/stage_job.py PLAN_FILE --recorded

A stage with no planned stage upstream runs (DVC found it stale). One with planned stages
upstream runs if DVC, asked by the submit host once those have finished, finds it stale
(<rule>.verdict), as `dvc repro` decides. Before the command, the stage's outputs are removed
(persistent ones kept), as `dvc repro` does. `--recorded` is the last job, on the submit host:
it waits until every stage that ran is recorded, and fails if one could not be. Standard
library and dvc_plan (which imports DVC only inside functions): a job starts in milliseconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dvc_plan import Plan, PlannedStage, publish  # (this folder: no DVC is imported at its top)

STALL_TIMEOUT_S = 600.0  # no verdict, or no stage recorded, for this long: the submit host is gone


def wait_for(path: Path) -> dict:
    deadline = time.monotonic() + STALL_TIMEOUT_S
    while not path.exists():
        if time.monotonic() > deadline:
            sys.exit(
                f"transferlab: {path.name} did not appear in {STALL_TIMEOUT_S:.0f} s: is the Snakemake that planned this run still alive?"
            )
        time.sleep(0.1)
    return json.loads(path.read_text())


def must_run(stage: PlannedStage, plan: Plan) -> bool:
    if not stage.upstream:
        return True
    verdict = wait_for(Path(plan.marker(stage.rule, "verdict")))
    if verdict.get("error"):
        sys.exit(f"transferlab: {stage.name} not run: {verdict['error']}")
    return verdict["run"]


def remove(path: str) -> None:
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def run_stage(plan: Plan, rule: str) -> None:
    stage = next(s for s in plan.stages if s.rule == rule)
    ran = must_run(stage, plan)
    if ran:
        for out in stage.fresh_outs:
            remove(out)
        code = subprocess.run(stage.cmd, shell=True).returncode
        if code != 0:
            sys.exit(code)  # not finished: never recorded
    else:
        print(f"transferlab: {stage.name}: up to date once its inputs were remade (DVC); not rerun", file=sys.stderr)
    publish(Path(plan.marker(rule, "finished")), {"ran": ran, "ended_at": time.time()})
    Path(plan.marker(rule, "ok")).touch()  # the job's last act: its slot is free


def all_recorded(plan: Plan) -> None:
    """Wait until the submit host has recorded every stage (progress every 10 s, and while it
    moves on); fail with the stages it could not record."""
    pending = {s.rule for s in plan.stages}
    errors, last_change, said = [], time.monotonic(), 0.0
    while pending:
        for rule in [r for r in pending if Path(plan.marker(r, "committed")).exists()]:
            error = json.loads(Path(plan.marker(rule, "committed")).read_text())["error"]
            errors += [error] if error else []
            pending.discard(rule)
            last_change = time.monotonic()
        now = time.monotonic()
        if pending and now - said > 10:
            print(
                f"transferlab: recording in dvc.lock: {len(pending)} of {len(plan.stages)} stages to go",
                file=sys.stderr,
            )
            said = now
        if now - last_change > STALL_TIMEOUT_S:
            sys.exit(
                f"transferlab: no stage recorded in {STALL_TIMEOUT_S:.0f} s: is the Snakemake that planned this run still alive?"
            )
        time.sleep(0.1)
    if errors:
        sys.exit(f"transferlab: {len(errors)} stage(s) not recorded: {errors[0]}")
    Path(plan.recorded).touch()


if __name__ == "__main__":
    _plan = Plan.load(Path(sys.argv[1]))
    all_recorded(_plan) if sys.argv[2] == "--recorded" else run_stage(_plan, sys.argv[2])
