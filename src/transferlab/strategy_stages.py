"""Stage commands of the strategies study and the cut study (inputs, training, outputs)."""

from __future__ import annotations

from pathlib import Path

import torch

from transferlab.artifacts import atomic_json
from transferlab.config import Params
from transferlab.data.dataset import TaskData, per_class_subset, select_classes
from transferlab.data.files import as_tensor
from transferlab.models import create_model
from transferlab.runs import StrategyRun, seed_of
from transferlab.stages import RunInfo, load_checkpoint, load_dataset, load_model, load_split, train_run, _model_options
from transferlab.strategies import CutNet, apply_strategy, latency_per_image, parameter_count, peak_memory
from transferlab.train import History, ParamGroup
from transferlab.transfer import copy_layers


def subset(task: TaskData, images_per_class: int | str, seed: int) -> TaskData:
    """B's training images cut to k per class: the first k of one seeded permutation per
    class, so the subsets for growing k are nested and every strategy gets the same images."""
    if images_per_class == "all":
        return task
    keep = per_class_subset(task.train_y, int(images_per_class), seed)
    return TaskData(task.classes, task.train_x[keep], task.train_y[keep], task.test_x, task.test_y)


def _target(params: Params, run: StrategyRun, dataset: Path, split_file: Path) -> TaskData:
    task = select_classes(load_dataset(dataset), load_split(split_file).half("B"))
    return subset(task, run.images_per_class, seed_of(params.seed, f"s{run.split}/subset/r{run.replicate}"))


def strategy(params: Params, run: StrategyRun, dataset: Path, split_file: Path, source_model: Path, model_out: Path, run_dir: Path, device: torch.device) -> History:
    """Train one strategy on (a subset of) B from baseA of the same split and replicate."""
    cfg = params.strategies
    task = _target(params, run, dataset, split_file)
    seed = seed_of(params.seed, str(run))
    torch.manual_seed(seed)
    model = create_model(params.model.name, task.num_classes, **_model_options(params))
    copy_layers(load_model(source_model), model, model.depth)
    groups = apply_strategy(model, run.name, cfg.top_units, cfg.top_lr_factor, cfg.lower_lr_factor, cfg.extra_fc)
    fields = {"split": run.split, "treatment": f"strategy:{run.name}", "strategy": run.name, "images_per_class": str(run.images_per_class),
              "replicate": run.replicate, "target": "B", "train_images": len(task.train_y)}  # fmt: skip
    return train_run(params, RunInfo(str(run), seed, params.training("strategies"), fields), task, model, groups, model_out, run_dir, device)


def cut(params: Params, run: StrategyRun, dataset: Path, split_file: Path, source_model: Path, model_out: Path, run_dir: Path, device: torch.device) -> History:
    """Units 1..n of baseA, global pooling and a new classifier, fine-tuned on B; then its
    parameters, size on disk, peak inference memory and latency per image."""
    cfg = params.strategies
    task = _target(params, run, dataset, split_file)
    seed = seed_of(params.seed, str(run))
    torch.manual_seed(seed)
    source, state = load_checkpoint(source_model)
    net = CutNet(source, run.n, task.num_classes)
    groups = [ParamGroup(list(net.head.parameters()), 1.0, "new"), ParamGroup(list(net.units.parameters()), cfg.top_lr_factor, "copied")]
    fields = {"split": run.split, "treatment": "cut", "n": run.n, "replicate": run.replicate, "target": "B", "source": run.source}
    # the pretrained units expect the normalisation they were trained with
    stats = (state["input_mean"], state["input_std"]) if run.source == "P" else None
    history = train_run(params, RunInfo(str(run), seed, params.training("strategies"), fields), task, net, groups, model_out, run_dir, device, input_stats=stats)
    x = as_tensor(task.test_x[: cfg.latency_batch]).to(device).float().div(255).contiguous(memory_format=torch.channels_last)
    net.to(device)
    peak, how = peak_memory(net, x)
    metrics_path = run_dir / "metrics.json"
    import json

    metrics = json.loads(metrics_path.read_text())
    metrics |= {
        "parameters": parameter_count(net),
        "size_bytes": model_out.stat().st_size,
        "peak_memory_bytes": peak,
        "peak_memory_method": how,
        "latency_s_per_image": latency_per_image(net, x, cfg.latency_repeats),
        "latency_batch": len(x),
    }
    atomic_json(metrics, metrics_path)
    return history
