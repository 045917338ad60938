"""Read the resolved stage graph of dvc.yaml for the Snakefile.

DVC's `Repo(...).index.stages` is internal API: pyproject pins DVC's major version, and
tests/test_engines.py checks that both engines see the same jobs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class StageRule:
    """What Snakemake needs of one DVC stage."""

    name: str  # DVC's address, e.g. "transfer@0-A-B-3-0"
    rule: str  # a valid Snakemake rule name
    cmd: str
    deps: tuple[str, ...]  # file and folder dependencies (params excluded)
    outs: tuple[str, ...]  # every output, metrics and plots included
    params: str  # the values of the params the stage declares (JSON), for rerun on change
    resources: dict


def rule_name(address: str) -> str:
    """A Snakemake rule name from a DVC stage address (letters, digits, underscores)."""
    return re.sub(r"\W", "_", address.replace("+", "plus"))


def is_directory(path: str, root: Path) -> bool:
    """An output is a folder if it is one already, or (not yet made) has no file suffix."""
    p = root / path
    return p.is_dir() or (not p.exists() and PurePosixPath(path).suffix == "")


def read_stages(root: Path = Path(".")) -> list[StageRule]:
    """Every stage of dvc.yaml (matrix and foreach entries resolved), in DVC's order."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    rules = []
    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            if not stage.cmd:
                continue  # a .dvc file of tracked data, not a stage
            cmd = stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd)
            params = {}
            for dep in stage.deps:
                if isinstance(dep, ParamsDependency):
                    params.update(dep.read_params())
            rules.append(
                StageRule(
                    name=stage.addressing,
                    rule=rule_name(stage.addressing),
                    cmd=cmd,
                    deps=tuple(str(d.def_path) for d in stage.deps if not isinstance(d, ParamsDependency)),
                    outs=tuple(str(o.def_path) for o in stage.outs),
                    params=json.dumps(params, sort_keys=True, default=str),
                    resources=dict((stage.meta or {}).get("resources", {})),
                )
            )
    return rules


def job_resources(stage: StageRule, config: dict) -> dict:
    """A stage's resources for this run, from dvc.yaml's `meta.resources` and the profile's
    `config` (GPU jobs are the stages that ask for `gpu`: training and feature extraction):

        gpus: 0            GPU jobs ask for no GPU (a CPU partition); N: N GPUs each (default 1)
        gpu_model: a100    GPU jobs ask for that type (the SLURM plugin: --gpus=a100:1)
        gpu_partition: p   GPU jobs go to partition p (the others to default-resources')
    """
    resources = dict(stage.resources)
    if "gpu" not in resources:
        return resources
    gpus = int(config.get("gpus", resources["gpu"]))
    if gpus == 0:
        del resources["gpu"]
        return resources
    resources["gpu"] = gpus
    if config.get("gpu_model"):
        resources["gpu_model"] = str(config["gpu_model"])
    if config.get("gpu_partition"):
        resources["slurm_partition"] = str(config["gpu_partition"])
    return resources


def producers(dep: str, outs: list[str]) -> list[str]:
    """The outputs a dependency stands for: itself, or those inside it (a folder dep)."""
    inside = [o for o in outs if o == dep or o.startswith(dep.rstrip("/") + "/")]
    if inside:
        return inside
    return [o for o in outs if dep.startswith(o.rstrip("/") + "/")] or [dep]


def _mtimes(paths: list[str]) -> dict[str, tuple[int, int]]:
    """(atime, mtime) in ns of every file and folder at or under these paths."""
    found = {}
    for path in map(Path, paths):
        for p in [path, *(path.rglob("*") if path.is_dir() else [])]:
            if p.exists():
                st = p.stat()
                found[str(p)] = (st.st_atime_ns, st.st_mtime_ns)
    return found


def commit(stages: list[StageRule]) -> None:
    """`dvc commit` the stages whose outputs all exist, keeping their files' mtimes.

    DVC rewrites committed outputs from its cache, which would give them new mtimes in no
    particular order, and Snakemake would then see inputs newer than outputs."""
    import os
    import subprocess

    done = [s for s in stages if all(Path(o).exists() for o in s.outs)]
    if not done:
        return
    before = _mtimes([o for s in done for o in s.outs])
    subprocess.run(["dvc", "commit", "--force", "--quiet", *(s.name for s in done)], check=True)
    for path, times in sorted(before.items(), key=lambda kv: -len(kv[0])):  # files before their folders
        if os.path.exists(path):
            os.utime(path, ns=times)
