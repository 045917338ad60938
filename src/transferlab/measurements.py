"""What a run measured about itself (wall times, images/s, latency, memory, host, revision).

Kept apart from every file a stage depends on or DVC tracks: those must be the same bytes when
remade from the same code, params and inputs, or DVC would rerun everything below them. A run's
measurements go to data/measurements/<run id>.json (outside DVC's outputs and git), where the
benchmarks and the cut table's latency column read them. A run that DVC restores from its cache
did not run, and so has none.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

from transferlab.artifacts import atomic_json, git_revision

FOLDER = "data/measurements"


def measurements_path(root: Path, run_id: str) -> Path:
    return root / FOLDER / f"{run_id}.json"


def record(root: Path, run_id: str, values: dict) -> None:
    """Write a run's measurements, with the commit it ran from and the host."""
    atomic_json(
        {"run_id": run_id, **values, "git_revision": git_revision(root), "host": platform.node()},
        measurements_path(root, run_id),
    )


def read(root: Path, run_id: str) -> dict | None:
    """A run's measurements, or None when it has none (restored by DVC, or not run here)."""
    try:
        return json.loads(measurements_path(root, run_id).read_text())
    except (OSError, ValueError):
        return None
