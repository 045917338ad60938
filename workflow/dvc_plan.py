"""The Snakefile's link to DVC, on the submit host: DVC decides what is stale, Snakemake
schedules it, and each stage that ran is recorded in dvc.lock as soon as it ends.

1. `make_plan` takes DVC's repository lock (held until Snakemake exits: one engine at a time),
   asks DVC which stages are stale (`Stage.changed()`: params values, deps, code, missing or
   modified outputs, exactly what `dvc status` reports) and plans them and every stage that
   depends on them. The plan is written to .snakemake/transferlab/<id>/plan.json, which the
   jobs read (a SLURM job never asks DVC again).
2. Each job runs workflow/stage_job.py: a stage with planned stages upstream runs only if DVC,
   asked again once those have finished, still finds it stale (<rule>.verdict: as `dvc repro`
   decides, so a stage whose inputs came out the same is not rerun); then it writes
   <rule>.finished and ends: its cores and GPU are free before the stage is recorded.
3. `Committer`, a thread of this process, takes each finished stage: it hashes its outputs
   (`stage.save`), gives DVC's verdict to the stages that waited on it, then records it in
   dvc.lock (`commit`, `dump`: `dvc commit` of that stage) and writes <rule>.committed. Each
   record rewrites the whole dvc.lock (about 0.5 s at 70 stages here), so the stages finished
   since the last one are recorded together, at most one record per RECORD_SPACING times the
   last record's duration, and at once when no planned stage is still running. The last job
   (stage_job.py --recorded, on this host) waits for them all. A stage that did not run to the
   end is never recorded; one that ran and was not recorded before an interruption is stale
   for DVC, and runs again.

DVC's `Repo.index` and `Stage` are internal API: pyproject pins the DVC releases the tests ran
with; tests/test_adapter.py calls each of them on a three-stage graph in seconds, and
tests/test_engines.py runs both engines against each other on the studies.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

PLAN_ENV = "TRANSFERLAB_PLAN"  # the plan file, for jobs that read the Snakefile again (SLURM)
PLANS = Path(".snakemake/transferlab")
# A record of finished stages in dvc.lock waits until this many times the last record's duration
# has passed since it: records take at most about 1/100 of the wall time (a record of 128 stages
# took about 1 s here: at most one each 100 s while stages keep finishing; a SIGKILLed submit
# host loses those records, and DVC reruns their stages).
RECORD_SPACING = 100


class EngineBusy(Exception):
    """Another engine (dvc repro, dvc exp run, another snakemake) holds the repository."""


@dataclass(frozen=True)
class PlannedStage:
    """One DVC stage as a Snakemake job."""

    name: str  # DVC's address, e.g. "transfer@0-A-B-3-0"
    rule: str  # a valid Snakemake rule name
    cmd: str
    deps: tuple[str, ...]  # file and folder dependencies (params excluded)
    fresh_outs: tuple[str, ...]  # outputs removed before the command runs (not `persist`), as dvc repro does
    stale: bool  # DVC's own judgement; False: planned because a stage it depends on is stale
    upstream: tuple[str, ...]  # rules of the planned stages whose outputs it reads
    resources: dict = field(default_factory=dict)
    local: bool = False  # dvc.yaml's `meta.local`: seconds of bookkeeping, run on the submit host


@dataclass
class Plan:
    """This invocation's stages to run, and where their markers go."""

    folder: str
    threads: int
    stages: list[PlannedStage]

    def marker(self, rule: str, kind: str) -> str:
        """<folder>/<rule>.<kind>: finished and ok (the job; ok for Snakemake), verdict and
        committed (the committer)."""
        return f"{self.folder}/{rule}.{kind}"

    @property
    def recorded(self) -> str:
        """The last job's marker: every stage that ran is recorded in dvc.lock."""
        return f"{self.folder}/recorded"

    def save(self) -> Path:
        path = Path(self.folder) / "plan.json"
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: Path) -> Plan:
        raw = json.loads(Path(path).read_text())
        stages = [
            PlannedStage(
                **{
                    **s,
                    "deps": tuple(s["deps"]),
                    "fresh_outs": tuple(s["fresh_outs"]),
                    "upstream": tuple(s["upstream"]),
                }
            )
            for s in raw["stages"]
        ]
        return cls(raw["folder"], raw["threads"], stages)


def rule_name(address: str) -> str:
    """A Snakemake rule name from a DVC stage address (letters, digits, underscores)."""
    return re.sub(r"\W", "_", address.replace("+", "plus"))


def job_resources(resources: dict, config: dict) -> dict:
    """A stage's resources for this run, from dvc.yaml's `meta.resources` and the profile's
    `config` (GPU jobs are the stages that ask for `gpu`: training and feature extraction):

        gpus: 0            GPU jobs ask for no GPU (a CPU partition); N: N GPUs each (default 1)
        gpu_model: a100    GPU jobs ask for that type (the SLURM plugin: --gpus=a100:1)
        gpu_partition: p   GPU jobs go to partition p (the others to default-resources')
    """
    resources = dict(resources)
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


def _holder(lockfile: Path) -> str:
    """Who holds DVC's lock file: its pid (zc.lockfile writes it) and command line."""
    try:
        pid = int(lockfile.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except (OSError, ValueError, IndexError):
        return "another process"
    words = cmdline.split()
    engine = next(
        (w for w in ("snakemake", "dvc") if any(Path(x).name == w or x.endswith(f"/{w}") for x in words[:3])), None
    )
    short = " ".join([Path(words[0]).name, *words[1:4]]) if words else "?"
    return f"{engine or 'a process'} (pid {pid}: {short})"


def open_locked_repo(root: Path):
    """DVC's repository with its lock taken for as long as this process runs, or EngineBusy."""
    from contextlib import ExitStack

    from dvc.lock import LockError
    from dvc.repo import Repo, lock_repo

    repo = Repo(str(root))
    stack = ExitStack()
    try:
        stack.enter_context(lock_repo(repo))
    except LockError:
        repo.close()
        lockfile = Path(repo.tmp_dir) / "lock"
        raise EngineBusy(
            f"this repository is in use by {_holder(lockfile)}: one engine at a time; wait for it or stop it"
        ) from None
    return repo, stack


def make_plan(repo, threads: int) -> tuple[Plan, dict]:
    """The stale stages (DVC's judgement) and those depending on them; also DVC's Stage objects
    of the plan, by rule, for the committer."""
    import networkx as nx
    from dvc.dependency.param import ParamsDependency

    stages = [s for s in repo.index.stages if s.cmd]
    graph = repo.index.graph  # edges: stage -> a stage whose outputs it reads
    stale = {s for s in stages if s.changed()}
    planned = set(stale).union(*(nx.ancestors(graph, s) for s in stale))
    folder = PLANS / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    shutil.rmtree(PLANS, ignore_errors=True)  # earlier invocations' markers (the lock says none runs)
    folder.mkdir(parents=True)
    jobs, objects = [], {}
    for s in (s for s in stages if s in planned):
        cmd = s.cmd if isinstance(s.cmd, str) else " && ".join(s.cmd)
        jobs.append(
            PlannedStage(
                name=s.addressing,
                rule=rule_name(s.addressing),
                cmd=cmd,
                deps=tuple(str(d.def_path) for d in s.deps if not isinstance(d, ParamsDependency)),
                fresh_outs=tuple(str(o.def_path) for o in s.outs if not o.persist),
                stale=s in stale,
                upstream=tuple(sorted(rule_name(u.addressing) for u in graph.successors(s) if u in planned)),
                resources=dict((s.meta or {}).get("resources", {})),
                local=bool((s.meta or {}).get("local", False)),
            )
        )
        objects[rule_name(s.addressing)] = s
    return Plan(str(folder), threads, jobs), objects


def publish(path: Path, content: dict) -> None:
    """Write a marker whole: a temp file renamed into place."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(content))
    tmp.rename(path)


class Committer(threading.Thread):
    """Records each finished stage in dvc.lock, on this host, while Snakemake runs the rest."""

    def __init__(self, repo, plan: Plan, stages: dict, release, plan_s: float) -> None:
        super().__init__(name="dvc-commit", daemon=True)
        self.repo, self.plan, self.stages, self.release, self.plan_s = repo, plan, stages, release, plan_s
        self.done: dict[str, dict] = {}  # rule -> its finished marker (ran, ended_at), once taken
        self.errors: dict[str, str] = {}  # rule -> why it was not recorded
        self.lags: list[tuple[float, float]] = []  # per stage: (its job's end, its record) after its command
        self.to_record: list[PlannedStage] = []  # finished, outputs hashed, not yet in dvc.lock
        self.next_record_at = 0.0  # perf_counter time before which a record waits (RECORD_SPACING)
        self.recorded = 0
        self.records = 0
        self.commit_s = 0.0  # the recorder's whole time; its parts:
        self.spent = {"hash_outputs_s": 0.0, "verdicts_s": 0.0, "records_s": 0.0}
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            self.sweep()
            self._stopping.wait(0.2)

    def sweep(self, final: bool = False) -> None:
        """Take every stage whose job has finished: hash its outputs and give the stages waiting
        on it their verdicts (jobs wait for those); then record the stages taken so far, if the
        last record is far enough behind, if nothing planned still runs, or if this is the end."""
        t0 = time.perf_counter()
        for stage in self.plan.stages:
            marker = Path(self.plan.marker(stage.rule, "finished"))
            if stage.rule not in self.done and marker.exists():
                self.done[stage.rule] = json.loads(marker.read_text())
                t = time.perf_counter()
                self._hash_outputs(stage)
                self.spent["hash_outputs_s"] += time.perf_counter() - t
                t = time.perf_counter()
                self._verdicts_after(stage.rule)
                self.spent["verdicts_s"] += time.perf_counter() - t
                self.to_record.append(stage)
        all_done = len(self.done) == len(self.plan.stages)
        if self.to_record and (final or all_done or time.perf_counter() >= self.next_record_at):
            batch, self.to_record = self.to_record, []
            started = time.perf_counter()
            self._record(batch)
            self.records += 1
            took = time.perf_counter() - started
            self.spent["records_s"] += took
            self.next_record_at = time.perf_counter() + RECORD_SPACING * took
        self.commit_s += time.perf_counter() - t0

    def _hash_outputs(self, planned: PlannedStage) -> None:
        try:
            if self.done[planned.rule]["ran"]:
                self.stages[planned.rule].save()
        except Exception as err:  # never recorded; the stages below it do not run
            self.errors[planned.rule] = _one_line("dvc commit", planned.name, err)

    def _record(self, batch: list[PlannedStage]) -> None:
        """Record the stages of `batch` that ran and whose outputs hashed (`dvc commit` of them):
        each one's outputs into DVC's cache, then dvc.lock rewritten once for them all."""
        ran = [p for p in batch if p.rule not in self.errors and self.done[p.rule]["ran"]]
        committed = []
        for planned in ran:
            try:
                # relink=False: the outputs copied into DVC's cache, the workspace files left as they
                # are (a relink removes and remakes them, and jobs below may be reading them now)
                self.stages[planned.rule].commit(relink=False)
                committed.append(planned)
            except Exception as err:
                self.errors[planned.rule] = _one_line("dvc commit", planned.name, err)
        by_file: dict[str, list] = {}
        for planned in committed:
            by_file.setdefault(self.stages[planned.rule].dvcfile.path, []).append(self.stages[planned.rule])
        for stages in by_file.values():
            try:
                stages[0].dvcfile.dump_stages(stages, update_pipeline=False)
            except Exception as err:
                for stage in stages:
                    self.errors[rule_name(stage.addressing)] = _one_line("dvc commit", stage.addressing, err)
        for planned in batch:
            if planned in committed and planned.rule not in self.errors:
                self.recorded += 1
                print(
                    f"transferlab: {planned.name} recorded in dvc.lock ({self.recorded} so far)",
                    file=sys.stderr,
                    flush=True,
                )
            publish(Path(self.plan.marker(planned.rule, "committed")), {"error": self.errors.get(planned.rule)})
            ended = self.done[planned.rule].get("ended_at")
            if ended is not None:
                job_end = os.path.getmtime(self.plan.marker(planned.rule, "ok")) - ended
                self.lags.append((job_end, time.time() - ended))

    def _verdicts_after(self, rule: str) -> None:
        """DVC's judgement (`Stage.changed()`, as `dvc repro` asks it after the stages upstream
        have run) for each planned stage whose planned upstream stages have now all finished."""
        for waiting in self.plan.stages:
            if rule in waiting.upstream and all(up in self.done for up in waiting.upstream):
                failed = [self.errors[up] for up in waiting.upstream if up in self.errors]
                try:
                    verdict = (
                        {"run": False, "error": failed[0]}
                        if failed
                        else {"run": bool(self.stages[waiting.rule].changed())}
                    )
                except Exception as err:
                    verdict = {"run": False, "error": _one_line("dvc status", waiting.name, err)}
                publish(Path(self.plan.marker(waiting.rule, "verdict")), verdict)

    def finish(self) -> None:
        """Record what finished last, stop, write the engine's own timings, free the repository."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if not self.is_alive():  # never started: a dry run, a listing
            self.release()
            return
        self.join()
        self.sweep(final=True)
        plan_s = self.plan_s
        timings = {
            "plan_s": round(plan_s, 3),
            "commit_s": round(self.commit_s, 3),
            "recorded": self.recorded,
            "records": self.records,  # dvc.lock rewrites
            **{k: round(v, 3) for k, v in self.spent.items()},
            "planned": len(self.plan.stages),
            # from a stage's command ending: to its job's end (its slot free), to its record in dvc.lock
            "job_end_s_median": _median([j for j, _ in self.lags]),
            "record_lag_s_median": _median([r for _, r in self.lags]),
            "record_lag_s_max": round(max((r for _, r in self.lags), default=0.0), 3),
        }
        (Path(self.plan.folder) / "engine.json").write_text(json.dumps(timings) + "\n")
        print(
            f"transferlab: {self.recorded} of {len(self.plan.stages)} planned stages ran and are recorded in dvc.lock "
            f"(asking DVC {plan_s:.1f} s, recording {self.commit_s:.1f} s)",
            file=sys.stderr,
        )
        self.release()


def _one_line(action: str, stage: str, err: Exception) -> str:
    return f"{action} {stage}: {err}".splitlines()[0]


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def submit_host_plan(root: Path, threads: int) -> tuple[Plan, Committer]:
    """On the submit host: plan with DVC, under its lock, which is kept until `Committer.finish`
    (Snakemake's onsuccess/onerror, or this process's exit: Ctrl-C and failures too). The
    committer thread is started by `Committer.start` (Snakemake's onstart: not in a dry run)."""
    t0 = time.perf_counter()
    repo, stack = open_locked_repo(root)
    try:
        plan, objects = make_plan(repo, threads)
    except BaseException:
        stack.close()
        repo.close()
        raise
    os.environ[PLAN_ENV] = str(plan.save().resolve())

    def release() -> None:
        stack.close()
        repo.close()

    plan_s = time.perf_counter() - t0
    stale = [s.name for s in plan.stages if s.stale]
    print(
        f"transferlab: DVC says {len(stale)} stage(s) are stale: {', '.join(stale[:6])}{' ...' if len(stale) > 6 else ''}; "
        f"{len(plan.stages) - len(stale)} more depend on them and run if an input they read changes [{plan_s:.1f} s]",
        file=sys.stderr,
    )
    committer = Committer(repo, plan, objects, release, plan_s)
    atexit.register(committer.finish)
    return plan, committer
