"""Which transfer strategy when (the lecture's 2x2 advice, measured), and nets cut at unit n.

Strategies on a source net for task B:
    classifier     all units frozen, a new classifier ("swap the softmax")
    extra_fc       all units frozen, new fully connected layers before the classifier
    finetune_top   the top k units fine-tuned at a reduced rate, the rest frozen
    finetune_all   every unit fine-tuned: the top k at the top rate, the others lower
"""

from __future__ import annotations

import time

import torch
from torch import nn

from transferlab.binary import _GlobalPool
from transferlab.models.layered import LayeredNet
from transferlab.train import ParamGroup

STRATEGIES = ("classifier", "extra_fc", "finetune_top", "finetune_all")
LECTURE_ADVICE = {
    ("similar", "little"): "linear classifier on the top layer",
    ("similar", "lots"): "fine-tune a few layers",
    ("different", "little"): "in trouble: try linear classifiers from different stages",
    ("different", "lots"): "fine-tune a larger number of layers",
}


def new_head(width: int, num_classes: int, hidden: list[int]) -> nn.Sequential:
    """Global pooling (for maps), then `hidden` new fully connected layers, then the classifier."""
    parts: list[nn.Module] = [_GlobalPool()]
    for h in hidden:
        parts += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(0.5)]
        width = h
    return nn.Sequential(*parts, nn.Linear(width, num_classes))


def apply_strategy(model: LayeredNet, name: str, top_units: int, top_factor: float, lower_factor: float, extra_fc: list[int]) -> list[ParamGroup]:
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
    groups = [ParamGroup(list(model.head.parameters()), 1.0, "new"), ParamGroup([p for i in top for p in model.layers[i].parameters()], top_factor, "top")]
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
