"""The stage commands' work: read input artifacts, call the library, write outputs atomically.

The CLI parses arguments and params.yaml and calls these; they receive typed objects.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from transferlab.artifacts import atomic_json, atomic_torch_save, provenance
from transferlab.config import Params, TrainConfig
from transferlab.data.dataset import PreparedDataset, TaskData, prepare_dataset, select_classes
from transferlab.data.splits import Split, make_split
from transferlab.models import LayeredNet, create_model
from transferlab.runs import BinaryRun, Layout, RunSpec, seed_of
from transferlab.train import FitOptions, History, ParamGroup, fit
from transferlab.transfer import build_treatment, param_groups


def prepare(params: Params, out: Path) -> PreparedDataset:
    """Generate, or read (and download) and convert, the data set into one tensor file."""
    ds = prepare_dataset(params.data)
    atomic_torch_save({**ds.to_dict(), "params": params.data.model_dump(), **provenance()}, out)
    return ds


def load_dataset(path: Path) -> PreparedDataset:
    """Read a prepared data set written by `prepare`."""
    return PreparedDataset.from_dict(torch.load(path, weights_only=True))


def split(params: Params, split_id: str, dataset: Path, out: Path) -> Split:
    """Make one class split and write it as JSON (class indices and names of A and B)."""
    ds = load_dataset(dataset)
    s = make_split(int(split_id) if split_id.isdigit() else split_id, ds.classes, ds.groups, ds.sources, params.split)
    names = {"names_a": [ds.classes[i] for i in s.classes_a], "names_b": [ds.classes[i] for i in s.classes_b]}
    atomic_json({**s.to_dict(), **names, "dataset": ds.name, **provenance()}, out)
    return s


def load_split(path: Path) -> Split:
    return Split.from_dict(json.loads(path.read_text()))


def _model_options(params: Params) -> dict:
    return {**params.model.options(), "image_size": params.data.image_size}


def load_checkpoint(path: Path) -> tuple[LayeredNet, dict]:
    """A trained net rebuilt from its checkpoint, and the checkpoint itself (its run, classes
    and input normalisation); weights_only: no code is unpickled."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = create_model(state["model_name"], state["num_classes"], **state["model_options"])
    model.load_state_dict(state["state_dict"])
    return model, state


def load_model(path: Path) -> LayeredNet:
    """Rebuild a trained net from its checkpoint."""
    return load_checkpoint(path)[0]


class _LiveLog:
    """Per-evaluation metrics through DVCLive, so `dvc plots` can draw them."""

    def __init__(self, directory: Path) -> None:
        from dvclive import Live

        shutil.rmtree(directory, ignore_errors=True)
        # dvcyaml=None: parallel jobs must not edit dvc.yaml; experiments are saved by DVC itself.
        self.live = Live(str(directory), dvcyaml=None, save_dvc_exp=False, report=None)

    def __call__(self, record: dict) -> None:
        self.live.step = record["step"]
        for key in ("train_loss", "train_top1", "test_top1", "val_top1", "lr"):
            if key in record:
                self.live.log_metric(key, record[key], plot=True)
        self.live.log_metric("epoch", record["epoch"], plot=False)
        self.live.next_step()

    def end(self) -> None:
        self.live.end()


@dataclass(frozen=True)
class RunInfo:
    """What a training run is called, how it is seeded and trained, and its table columns."""

    run_id: str
    seed: int
    cfg: TrainConfig
    fields: dict


def grid_run(params: Params, spec: RunSpec) -> RunInfo:
    """A run of the paper's grid: a base net or a treatment."""
    return RunInfo(str(spec), spec.seed(params.seed), params.training("base" if spec.is_base else "transfer"), _spec_fields(spec))


def train_run(
    params: Params,
    run: RunInfo,
    task: TaskData,
    model: nn.Module,
    groups: list[ParamGroup],
    model_out: Path,
    run_dir: Path,
    device: torch.device,
    objective=None,
    input_stats: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> History:
    """Train one run and write its model checkpoint, metrics.json and DVCLive log.

    The checkpoint holds the LayeredNet only (an A' net's binary heads are not transferred)."""
    cfg = run.cfg
    checkpoint = Layout().checkpoint(run.run_id)  # stage commands run at the project root
    fingerprint = json.dumps({"run": run.run_id, "params": params.model_dump(mode="json"), "device": device.type}, sort_keys=True)
    live = _LiveLog(run_dir / "live")
    opts = FitOptions(device, run.seed, checkpoint, fingerprint, label=run.run_id, on_record=live, objective=objective, input_stats=input_stats)
    started = time.perf_counter()
    history = fit(model, task, cfg, groups, opts)
    live.end()
    info = {"run_id": run.run_id, "seed": run.seed, "device": str(device), "params": params.model_dump(mode="json"), "train": cfg.model_dump(mode="json"), **provenance()}
    body = getattr(model, "body", model)
    atomic_torch_save(
        {
            **info,
            "model_name": params.model.name,
            "model_options": _model_options(params),
            "num_classes": task.num_classes,
            "classes": task.classes,
            "state_dict": {k: v.cpu() for k, v in body.state_dict().items()},
            "input_mean": history.input_stats[0],  # the normalisation, for feature extraction later
            "input_std": history.input_stats[1],
        },
        model_out,
    )
    born = process_started_at()
    metrics = {
        **info,
        **run.fields,
        **history.summary(cfg.best_k),
        "history": history.records,
        "wall_time_s": time.perf_counter() - started,
        # The fixed cost of a run: process start (interpreter, imports, data) to the first step.
        "startup_s": history.first_step_at - born if born and history.first_step_at else None,
        "process_s": time.time() - born if born else None,  # process start to metrics written
    }
    atomic_json(metrics, run_dir / "metrics.json")
    checkpoint.unlink(missing_ok=True)
    return history


def process_started_at() -> float | None:
    """Wall-clock start of this process (Linux /proc), or None elsewhere."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def _spec_fields(spec: RunSpec) -> dict:
    return {
        "split": spec.split,
        "treatment": spec.treatment,
        "source": spec.source or "",
        "target": spec.target,
        "n": spec.n,
        "finetune": spec.finetune,
        "replicate": spec.replicate,
    }


def train_base(params: Params, spec: RunSpec, dataset: Path, split_file: Path, model_out: Path, run_dir: Path, device: torch.device) -> History:
    """Train the base net of one half."""
    task = select_classes(load_dataset(dataset), load_split(split_file).half(spec.target))
    torch.manual_seed(spec.seed(params.seed))
    model = create_model(params.model.name, task.num_classes, **_model_options(params))
    groups = param_groups(model, 0, 1.0, params.training("base").layer_lr_factors)
    return train_run(params, grid_run(params, spec), task, model, groups, model_out, run_dir, device)


def transfer(
    params: Params, spec: RunSpec, dataset: Path, split_file: Path, source_model: Path | None, model_out: Path, run_dir: Path, device: torch.device
) -> History:
    """Train one treatment: n layers copied (or random), frozen or fine-tuned, on the target half."""
    task = select_classes(load_dataset(dataset), load_split(split_file).half(spec.target))
    torch.manual_seed(spec.seed(params.seed))
    fresh = create_model(params.model.name, task.num_classes, **_model_options(params))
    source, state = load_checkpoint(source_model) if source_model is not None else (None, {})
    model = build_treatment(fresh, spec.n, source, spec.finetune)
    factor = params.transfer.finetune_lr_factor if source is not None else 1.0
    groups = param_groups(model, spec.n, factor, params.training("transfer").layer_lr_factors)
    # a pretrained net's units expect the normalisation it was trained with
    stats = (state["input_mean"], state["input_std"]) if spec.source == "P" else None
    return train_run(params, grid_run(params, spec), task, model, groups, model_out, run_dir, device, input_stats=stats)


def pretrained(params: Params, weights: str, out: Path) -> list[str]:
    """Convert torchvision's published weights of model.name into a source-net checkpoint."""
    from transferlab.models.pretrained import IMAGENET_MEAN, IMAGENET_STD, load_pretrained

    net, classes = load_pretrained(params.model.name, weights, params.pretrained.cache, params.data.verify, params.data.download)
    atomic_torch_save(
        {
            "run_id": f"pretrained/{params.model.name}/{weights}",
            "model_name": params.model.name,
            "model_options": _model_options(params),
            "num_classes": len(classes),
            "classes": classes,
            "state_dict": net.state_dict(),
            "input_mean": torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
            "input_std": torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
            **provenance(),
        },
        out,
    )
    return classes


# --- the binary-partition study -------------------------------------------------------------


def binary_base(params: Params, split_id: str, beta: float, partition_seed: int, replicate: int,
                dataset: Path, split_file: Path, model_out: Path, run_dir: Path, device: torch.device) -> History:  # fmt: skip
    """Train an A' net: A's classifier plus binary heads, loss weight beta on the heads.

    Seeded like the base net on A of the same split and replicate, so that beta = 0 is that
    net exactly and every beta shares its initialisation and batch order (paired runs)."""
    from transferlab.binary import BinaryHeadsNet, objective, partitions

    cfg = params.binary
    task = select_classes(load_dataset(dataset), load_split(split_file).half("A"))
    seed = RunSpec(split_id, "A", replicate=replicate).seed(params.seed)
    torch.manual_seed(seed)
    body = create_model(params.model.name, task.num_classes, **_model_options(params))
    net = BinaryHeadsNet(body, partitions(task.num_classes, cfg.heads, partition_seed, cfg.equal_halves))
    train = params.training("base")  # as baseA's: beta = 0 is that net
    groups = [*param_groups(body, 0, 1.0, train.layer_lr_factors), ParamGroup(list(net.heads.parameters()), 1.0, "binary heads")]
    fields = {"split": split_id, "treatment": "binaryA", "beta": beta, "heads": cfg.heads, "partition_seed": partition_seed, "replicate": replicate, "target": "A"}
    run = RunInfo(str(BinaryRun(split_id, beta, partition_seed, replicate)), seed, train, fields)
    return train_run(params, run, task, net, groups, model_out, run_dir, device, objective(beta, train.label_smoothing))


def binary_finetune(params: Params, split_id: str, beta: float, partition_seed: int, frozen: int, replicate: int,
                    dataset: Path, split_file: Path, source_model: Path, model_out: Path, run_dir: Path, device: torch.device) -> History:  # fmt: skip
    """Fine-tune an A' net on B: its units copied (binary heads left behind), the first
    `frozen` units frozen, the rest at `body_lr_factor`, a new classifier at the full rate."""
    cfg = params.binary
    task = select_classes(load_dataset(dataset), load_split(split_file).half("B"))
    seed = seed_of(params.seed, f"s{split_id}/binB_f{frozen}/r{replicate}")  # shared by all betas and partitions
    torch.manual_seed(seed)
    model = create_model(params.model.name, task.num_classes, **_model_options(params))
    source = load_model(source_model)
    build_treatment(model, model.depth, source, finetune=True)
    model.freeze(range(frozen))
    train = params.training("binary")
    groups = param_groups(model, model.depth, cfg.body_lr_factor, train.layer_lr_factors)
    fields = {"split": split_id, "treatment": "binaryB", "beta": beta, "heads": cfg.heads, "partition_seed": partition_seed,
              "frozen": frozen, "replicate": replicate, "target": "B"}  # fmt: skip
    run = RunInfo(str(BinaryRun(split_id, beta, partition_seed, replicate, frozen)), seed, train, fields)
    return train_run(params, run, task, model, groups, model_out, run_dir, device)
