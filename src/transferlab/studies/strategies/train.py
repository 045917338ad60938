"""Which transfer strategy when (the lecture's 2x2 advice, measured), and nets cut at unit n.

Strategies on a source net for task B:
    classifier     all units frozen, a new classifier ("swap the softmax")
    extra_fc       all units frozen, new fully connected layers before the classifier
    finetune_top   the top k units fine-tuned at a reduced rate, the rest frozen
    finetune_all   every unit fine-tuned: the top k at the top rate, the others lower
"""

from __future__ import annotations

import json
import time

import torch
from torch import nn

from transferlab import measurements
from transferlab.artifacts import atomic_json
from transferlab.config import Params
from transferlab.data.dataset import TaskData, task_subset
from transferlab.data.files import as_tensor
from transferlab.data.stages import task_data
from transferlab.harness import RunInfo, load_checkpoint, model_options, source_input_stats, train_run
from transferlab.models import create_model
from transferlab.models.layered import GlobalPool, LayeredNet
from transferlab.runs import SUBSET_SEED, Layout, StrategyRun, seed_of
from transferlab.train import History, ParamGroup
from transferlab.transfer import copy_layers, param_groups


def new_head(width: int, num_classes: int, hidden: list[int]) -> nn.Sequential:
    """Global pooling (for maps), then `hidden` new fully connected layers, then the classifier."""
    parts: list[nn.Module] = [GlobalPool()]
    for h in hidden:
        parts += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(0.5)]
        width = h
    return nn.Sequential(*parts, nn.Linear(width, num_classes))


def apply_strategy(
    model: LayeredNet, name: str, top_units: int, top_factor: float, lower_factor: float, extra_fc: list[int]
) -> list[ParamGroup]:
    """Freeze and regroup a net whose units were all copied from the source; return its
    learning-rate groups (the head always at factor 1)."""
    depth = model.depth
    if name == "extra_fc":
        model.head = new_head(model.widths[-1], _classes(model), extra_fc)
    if name in ("classifier", "extra_fc"):
        model.freeze(range(depth))
        return [ParamGroup(list(model.head.parameters()), 1.0, "new")]
    top = list(range(max(0, depth - top_units), depth))
    if name == "finetune_top":
        model.freeze([i for i in range(depth) if i not in top])
        lower: list[int] = []
    else:
        lower = [i for i in range(depth) if i not in top]
    groups = [
        ParamGroup(list(model.head.parameters()), 1.0, "new"),
        ParamGroup([p for i in top for p in model.layers[i].parameters()], top_factor, "top"),
    ]
    if lower:
        groups.append(ParamGroup([p for i in lower for p in model.layers[i].parameters()], lower_factor, "lower"))
    return groups


def _classes(model: LayeredNet) -> int:
    return [m for m in model.head.modules() if isinstance(m, nn.Linear)][-1].out_features


class CutNet(nn.Module):
    """Units 1..n of a net, global pooling and a new classifier: a smaller net for deployment."""

    def __init__(self, source: LayeredNet, n: int, num_classes: int) -> None:
        super().__init__()
        self.units = nn.Sequential(*list(source.layers)[:n])
        self.head = new_head(source.widths[n - 1], num_classes, [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.units(x))


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


FLOPS_METHOD = "torch.utils.flop_counter: 2 x multiply-adds of convolutions and matrix products"


@torch.inference_mode()
def flops_per_image(model: nn.Module, x: torch.Tensor) -> int:
    """Floating-point operations of one image's forward pass, counted by torch's own counter
    (FLOPS_METHOD; normalisation, activations and pooling are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(x[:1])
    return int(counter.get_total_flops())


@torch.inference_mode()
def latency_per_image(model: nn.Module, x: torch.Tensor, repeats: int = 20, warmup: int = 3) -> float:
    """Median seconds per image over `repeats` timed batches, after `warmup` untimed ones."""
    model.eval()
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        model(x)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] / len(x)


@torch.inference_mode()
def peak_memory(model: nn.Module, x: torch.Tensor) -> tuple[int, str]:
    """Peak bytes of one inference batch, and how it was found: measured by the CUDA allocator,
    or on the CPU bounded from activation sizes (parameters plus the largest input + output of
    any module, from forward hooks)."""
    model.eval()
    if x.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(x.device)
        model(x)
        return int(torch.cuda.max_memory_allocated(x.device)), "cuda_max_memory_allocated"
    largest = [0]

    def hook(module, inputs, output):
        size = sum(t.numel() * t.element_size() for t in (*inputs, output) if isinstance(t, torch.Tensor))
        largest[0] = max(largest[0], size)

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return params + largest[0], "cpu_estimate_params_plus_largest_activation_pair"


# --- training the strategies and the cut nets on B -----------------------------------------------


def weights_size(net: torch.nn.Module) -> int:
    """Bytes of the net's weights as torch.save writes them alone: what the cut net weighs
    deployed (the checkpoint file adds the run's provenance, which differs between repositories)."""
    import io

    buffer = io.BytesIO()
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, buffer)
    return buffer.tell()


def target_task(params: Params, run: StrategyRun, layout: Layout) -> TaskData:
    task = task_data(layout, run.split, "B", params.data.workers)
    return task_subset(
        task, run.images_per_class, seed_of(params.seed, SUBSET_SEED.format(split=run.split, replicate=run.replicate))
    )


def strategy_fields(run: StrategyRun, train_images: int) -> dict:
    """The table columns of a strategy run."""
    return {
        "split": run.split,
        "treatment": f"strategy:{run.name}",
        "strategy": run.name,
        "images_per_class": str(run.images_per_class),
        "replicate": run.replicate,
        "target": "B",
        "train_images": train_images,
        "source": run.source,
    }


def strategy(params: Params, run: StrategyRun, layout: Layout, device: torch.device) -> History:
    """Train one strategy on (a subset of) B from baseA of the same split and replicate, or
    from the pretrained net."""
    cfg = params.strategies
    task = target_task(params, run, layout)
    seed = seed_of(params.seed, str(run))
    torch.manual_seed(seed)
    model = create_model(params.model.name, task.num_classes, **model_options(params))
    source, state = load_checkpoint(layout.source_model(run))
    copy_layers(source, model, model.depth)
    groups = apply_strategy(model, run.name, cfg.top_units, cfg.top_lr_factor, cfg.lower_lr_factor, cfg.extra_fc)
    fields = strategy_fields(run, len(task.train_y))
    return train_run(
        params,
        RunInfo(run, seed, params.training("strategies"), fields),
        layout,
        task,
        model,
        groups,
        device,
        input_stats=source_input_stats(run.source, state),
    )


def scratch(params: Params, run: StrategyRun, layout: Layout, device: torch.device) -> History:
    """No transfer: a net from random initialisation, every unit trained on (a subset of) B with
    the strategies' settings; what each strategy is compared with."""
    task = target_task(params, run, layout)
    seed = seed_of(params.seed, str(run))
    torch.manual_seed(seed)
    model = create_model(params.model.name, task.num_classes, **model_options(params))
    cfg = params.training("strategies")
    groups = param_groups(model, 0, 1.0, cfg.layer_lr_factors)
    return train_run(
        params, RunInfo(run, seed, cfg, strategy_fields(run, len(task.train_y))), layout, task, model, groups, device
    )


def cut(params: Params, run: StrategyRun, layout: Layout, device: torch.device) -> History:
    """Units 1..n of baseA, global pooling and a new classifier, fine-tuned on B; then its
    parameters, size on disk, peak inference memory and latency per image."""
    cfg = params.strategies
    task = target_task(params, run, layout)
    seed = seed_of(params.seed, str(run))
    torch.manual_seed(seed)
    source, state = load_checkpoint(layout.source_model(run))
    net = CutNet(source, run.n, task.num_classes)
    groups = [
        ParamGroup(list(net.head.parameters()), 1.0, "new"),
        ParamGroup(list(net.units.parameters()), cfg.top_lr_factor, "copied"),
    ]
    fields = {
        "split": run.split,
        "treatment": "cut",
        "n": run.n,
        "replicate": run.replicate,
        "target": "B",
        "source": run.source,
    }
    history = train_run(
        params,
        RunInfo(run, seed, params.training("strategies"), fields),
        layout,
        task,
        net,
        groups,
        device,
        input_stats=source_input_stats(run.source, state),
    )
    x = (
        as_tensor(task.test_x[: cfg.latency_batch])
        .to(device)
        .float()
        .div(255)
        .contiguous(memory_format=torch.channels_last)
    )
    net.to(device)
    peak, how = peak_memory(net, x)
    metrics_path = layout.metrics(run)
    metrics = json.loads(metrics_path.read_text())
    metrics |= {
        "parameters": parameter_count(net),
        "flops_per_image": flops_per_image(net, x),
        "flops_method": FLOPS_METHOD,
        "size_bytes": weights_size(net),
        "peak_memory_bytes": peak,
        "peak_memory_method": how,
        "latency_batch": len(x),
    }
    atomic_json(metrics, metrics_path)
    timings = measurements.read(layout.root, str(run)) or {}
    latency = {"latency_s_per_image": latency_per_image(net, x, cfg.latency_repeats), "latency_batch": len(x)}
    measurements.record(layout.root, str(run), {**timings, **latency, "device": str(device)})
    return history
