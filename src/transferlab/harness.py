"""One training run, whatever its study: inputs read, the net trained with a live log and
epoch checkpoints, then its checkpoint and metrics.json written atomically. Also the
checkpoint format, written here and read by `load_checkpoint`, and a run's fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
from torch import nn

from transferlab import measurements
from transferlab.artifacts import atomic_json, atomic_torch_save, provenance
from transferlab.codedeps import current_sha256
from transferlab.config import Params, TrainConfig
from transferlab.data.dataset import TaskData
from transferlab.data.stages import verify_files
from transferlab.models import LayeredNet, create_model
from transferlab.progress import command_started_at
from transferlab.runs import Layout, Run
from transferlab.train import FitOptions, History, ParamGroup, fit


def model_options(params: Params) -> dict:
    return {**params.model.options(), "image_size": params.data.image_size}


def load_checkpoint(path: Path) -> tuple[LayeredNet, dict]:
    """A trained net rebuilt from its checkpoint, and the checkpoint itself (its run, classes
    and input normalisation); weights_only: no code is unpickled."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = create_model(state["model_name"], state["num_classes"], **state["model_options"])
    model.load_state_dict(state["state_dict"])
    return model, state


def source_input_stats(source: str | None, state: dict) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The normalisation a run from this source trains with: the pretrained net's own (its
    units expect it), else None (the trainer computes the target task's)."""
    return (state["input_mean"], state["input_std"]) if source == "P" else None


def load_model(path: Path) -> LayeredNet:
    """Rebuild a trained net from its checkpoint."""
    return load_checkpoint(path)[0]


def _dvclive_live():
    """DVCLive's Live class, imported without pandas: DVCLive imports it at its top for tables
    (log_plot) that runs never log, 0.3 s of each run's start."""
    import sys

    hidden = "pandas" not in sys.modules
    if hidden:
        sys.modules["pandas"] = None  # an import of it fails: DVCLive then goes without
    try:
        from dvclive import Live
    finally:
        if hidden:
            del sys.modules["pandas"]
    return Live


_live_threads: list[tuple] = []  # (future, [its thread's ident]) of each Live() being made on a thread


def _before_fork() -> None:
    """A process forked while DVCLive's thread imports modules or opens the repository inherits
    locks that no thread of the child will release: a DataLoader worker (data.workers) hung on
    one. So a fork waits for that thread to be done (unless that thread is the one forking)."""
    for future, ident in _live_threads:
        if threading.get_ident() not in ident:
            future.exception()  # waits; its error, if any, is raised at the first record
    _live_threads[:] = [(f, i) for f, i in _live_threads if not f.done()]


os.register_at_fork(before=_before_fork)


class LiveLog:
    """Per-evaluation metrics through DVCLive, so `dvc plots` can draw them. DVCLive opens the DVC
    repository on a thread of its own (0.2 s) while the run takes its first steps; the first
    record, and any fork of this process, waits for it."""

    def __init__(self, directory: Path) -> None:
        from concurrent.futures import ThreadPoolExecutor

        shutil.rmtree(directory, ignore_errors=True)
        live = _dvclive_live()
        # dvcyaml=None: parallel jobs must not edit dvc.yaml; experiments are saved by DVC itself.
        options = {"dvcyaml": None, "save_dvc_exp": False, "report": None}
        ident: list[int] = []

        def make():
            ident.append(threading.get_ident())
            return live(str(directory), **options)

        pool = ThreadPoolExecutor(1)
        self._live = pool.submit(make)
        _live_threads.append((self._live, ident))
        pool.shutdown(wait=False)  # the thread ends once Live is made

    @property
    def live(self):
        return self._live.result()  # the thread's exception, if it raised one

    def __call__(self, record: dict) -> None:
        self.live.step = record["step"]
        for key in ("train_loss", "train_top1", "test_top1", "val_top1", "binary_test_top1", "lr"):
            if key in record:
                self.live.log_metric(key, record[key], plot=True)
        self.live.log_metric("epoch", record["epoch"], plot=False)
        self.live.next_step()

    def end(self) -> None:
        try:
            self.live.end()
        except FileNotFoundError as err:
            # DVCLive's last act: removing its signal file for the VS Code extension in the repository's
            # .dvc/tmp/exps/run (checked, then removed). Runs in parallel (queued experiments, Snakemake
            # jobs) race for the one file; the loser's run is complete all the same.
            if not str(err.filename).endswith("DVCLIVE_STEP_COMPLETED"):
                raise


@dataclass(frozen=True)
class RunInfo:
    """What a training run is called, how it is seeded and trained, and its table columns."""

    run: Run
    seed: int
    cfg: TrainConfig
    fields: dict

    @property
    def run_id(self) -> str:
        return str(self.run)


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read once per process while its size and time stay the same (a run
    whose outputs exist takes its fingerprint twice: to know whether it is current, then to
    record it)."""
    st = path.stat()
    return _sha256_of(str(path), st.st_size, st.st_mtime_ns)


@cache
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_fingerprint(params: Params, run: Run, layout: Layout) -> str:
    """What a run's result depends on: its id, every parameter (threads included), the code
    its command imports and its input files, hashed. A checkpoint is resumed, and a finished
    run counts as current, only when this matches."""
    blob = {
        "run": str(run),
        "params": params.model_dump(mode="json"),
        "code": current_sha256("train", layout.root / "data/code/train.json"),
        "inputs": {str(p.relative_to(layout.root)): file_sha256(p) for p in layout.inputs(run)},
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def is_current(params: Params, run: Run, layout: Layout) -> bool:
    """Whether the run's outputs exist and were made by this code from these inputs and params."""
    if not all(p.exists() for p in layout.outputs(run)) or not layout.metrics(run).is_file():
        return False
    if json.loads(layout.metrics(run).read_text()).get("fingerprint") != run_fingerprint(params, run, layout):
        return False
    verify_files(layout.dataset)  # image files read while training: a change since prepare stops here
    return True


def run_info(params: Params, run: Run, layout: Layout, seed: int, device: torch.device) -> dict:
    """Who a run is, for its metrics.json and checkpoint: id, seed, device, threads, params,
    fingerprint and provenance."""
    return {
        "run_id": str(run),
        "seed": seed,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "params": params.model_dump(mode="json"),
        "fingerprint": run_fingerprint(params, run, layout),
        **provenance(),
    }


CLOCKED = ("images_per_s",)  # history keys read off a clock: measurements, not metrics


def run_metrics(info: dict, fields: dict, history: History, best_k: int) -> dict:
    """The metrics.json of a run, whatever trained it: who it is, its table columns, its
    summary and history; nothing read off a clock (see run_measurements)."""
    return {
        **info,
        **fields,
        **history.summary(best_k),
        "history": [{k: v for k, v in r.items() if k not in CLOCKED} for r in history.records],
    }


def run_measurements(history: History, started: float) -> dict:
    """A run's timings (which benchmarks/pipeline_time.py reads), kept apart from its metrics."""
    born = command_started_at()
    return {
        "wall_time_s": time.perf_counter() - started,
        "resumed_epochs": history.resumed_epochs,
        "train_s": history.train_seconds,  # the training loop alone: what pipeline efficiency counts
        # The fixed cost of a run: process start (interpreter, imports, data) to the first step.
        "startup_s": history.first_step_at - born if born and history.first_step_at else None,
        "process_s": time.time() - born if born else None,  # process start to metrics written
        "images_per_s": [r[k] for r in history.records for k in CLOCKED if k in r],
    }


def train_run(
    params: Params,
    run: RunInfo,
    layout: Layout,
    task: TaskData,
    model: nn.Module,
    groups: list[ParamGroup],
    device: torch.device,
    objective=None,
    input_stats: tuple[torch.Tensor, torch.Tensor] | None = None,
    extra_eval=None,
    steps_per_epoch: int | None = None,
) -> History:
    """Train one run and write its model checkpoint, metrics.json and DVCLive log, at the
    paths `layout` gives its run id.

    The checkpoint holds the LayeredNet only (an A' net's binary heads are not transferred)."""
    cfg = run.cfg
    model_out, run_dir, checkpoint = layout.model(run.run), layout.run_dir(run.run), layout.checkpoint(run.run_id)
    info = run_info(params, run.run, layout, run.seed, device)
    fingerprint = f"{info['fingerprint']}/{device.type}"  # a checkpoint resumes on the same kind of device only
    live = LiveLog(run_dir / "live")
    opts = FitOptions(
        device,
        run.seed,
        checkpoint,
        fingerprint,
        label=run.run_id,
        on_record=live,
        objective=objective,
        input_stats=input_stats,
        extra_eval=extra_eval,
        steps_per_epoch=steps_per_epoch,
    )
    started = time.perf_counter()
    history = fit(model, task, cfg, groups, opts)
    live.end()
    info["train"] = cfg.model_dump(mode="json")
    body = getattr(model, "body", model)
    atomic_torch_save(
        {
            **info,
            "model_name": params.model.name,
            "model_options": model_options(params),
            "num_classes": task.num_classes,
            "classes": task.classes,
            "state_dict": {k: v.cpu() for k, v in body.state_dict().items()},
            "input_mean": history.input_stats[0],  # the normalisation, for feature extraction later
            "input_std": history.input_stats[1],
        },
        model_out,
    )
    atomic_json(run_metrics(info, run.fields, history, cfg.best_k), run_dir / "metrics.json")
    measurements.record(layout.root, run.run_id, run_measurements(history, started))
    checkpoint.unlink(missing_ok=True)
    return history
