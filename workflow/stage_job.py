"""One Snakemake job: run a planned DVC stage's command (if it still needs to run), then wait
until the submit host has recorded it in dvc.lock.

    python workflow/stage_job.py PLAN_FILE RULE

A stage with no planned stage upstream runs (DVC found it stale). One with planned stages
upstream runs if DVC, asked again by the submit host once those are done, finds it stale
(<rule>.verdict), as `dvc repro` decides. Before the command, the stage's outputs are removed
(persistent ones kept), as `dvc repro` does. Standard library and dvc_plan (which imports DVC only inside functions): a job starts in milliseconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dvc_plan import Plan, PlannedStage, publish  # (this folder: no DVC is imported at its top)

COMMIT_TIMEOUT_S = 600.0


def must_run(stage: PlannedStage, plan: Plan) -> bool:
    if not stage.upstream:
        return True
    return json.loads(Path(plan.marker(stage.rule, "verdict")).read_text())["run"]


def remove(path: str) -> None:
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def wait_for(path: Path, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            sys.exit(
                f"transferlab: {path.name} did not appear in {timeout_s:.0f} s: is the Snakemake that planned this run still alive?"
            )
        time.sleep(0.1)
    return json.loads(path.read_text())


def main(plan_file: str, rule: str) -> None:
    plan = Plan.load(Path(plan_file))
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
    publish(Path(plan.marker(rule, "finished")), {"ran": ran})
    result = wait_for(Path(plan.marker(rule, "committed")), COMMIT_TIMEOUT_S)
    if result["error"]:
        sys.exit(f"transferlab: {result['error']}")
    Path(plan.marker(rule, "ok")).touch()


if __name__ == "__main__":
    main(*sys.argv[1:3])
