"""One Snakemake job: run a planned DVC stage's command (if it still needs to run), then wait
until the submit host has recorded it in dvc.lock.

    python workflow/stage_job.py PLAN_FILE RULE

A stage that DVC found stale always runs. A stage planned only because a stage it depends on
was stale runs only if one of the outputs it reads changed (the committer says which did),
as `dvc repro` decides. Before the command, the stage's outputs are removed (persistent ones
kept), as `dvc repro` does. Standard library only: a job starts in milliseconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

COMMIT_TIMEOUT_S = 600.0


def overlaps(a: str, b: str) -> bool:
    """Whether two repository paths are the same or one holds the other."""
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def must_run(stage: dict, folder: Path) -> bool:
    if stage["stale"]:
        return True
    changed = [p for up in stage["upstream"] for p in json.loads((folder / f"{up}.committed").read_text())["changed"]]
    return any(overlaps(dep, out) for dep in stage["deps"] for out in changed)


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
    plan = json.loads(Path(plan_file).read_text())
    folder = Path(plan["folder"])
    stage = next(s for s in plan["stages"] if s["rule"] == rule)
    ran = must_run(stage, folder)
    if ran:
        for out in stage["fresh_outs"]:
            remove(out)
        code = subprocess.run(stage["cmd"], shell=True).returncode
        if code != 0:
            sys.exit(code)  # not finished: never recorded
    else:
        print(f"transferlab: {stage['name']}: no input it reads changed; not rerun", file=sys.stderr)
    tmp = folder / f"{rule}.finished.tmp"
    tmp.write_text(json.dumps({"ran": ran}))
    os.replace(tmp, folder / f"{rule}.finished")
    result = wait_for(folder / f"{rule}.committed", COMMIT_TIMEOUT_S)
    if result["error"]:
        sys.exit(f"transferlab: {result['error']}")
    (folder / f"{rule}.ok").touch()


if __name__ == "__main__":
    main(*sys.argv[1:3])
