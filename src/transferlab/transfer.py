"""Building the treatments: copy the first n layers of a source net, freeze or fine-tune them."""

from __future__ import annotations

from transferlab.models.layered import LayeredNet
from transferlab.train import ParamGroup


def copy_layers(source: LayeredNet, target: LayeredNet, n: int) -> None:
    """Copy layers 1..n of `source` into `target` (strict: architectures must match)."""
    if not 1 <= n <= min(source.depth, target.depth):
        raise ValueError(f"n={n} is outside 1..{min(source.depth, target.depth)}")
    for i in range(n):
        target.layers[i].load_state_dict(source.layers[i].state_dict(), strict=True)


def build_treatment(fresh: LayeredNet, n: int, source: LayeredNet | None, finetune: bool) -> LayeredNet:
    """The net of one treatment, from a freshly initialised net for the target task.

    source given: its first n layers are copied (AnB, BnB, and with finetune AnB+, BnB+);
    source None: the first n layers keep their random initialisation (the random control).
    Unless fine-tuned, the first n layers are frozen, BatchNorm statistics included."""
    if source is not None:
        copy_layers(source, fresh, n)
    if not finetune:
        fresh.freeze(range(n))
    return fresh


def param_groups(
    model: LayeredNet, n_copied: int, copied_lr_factor: float, unit_factors: dict[str, float] | None = None
) -> list[ParamGroup]:
    """Trainable parameters grouped by learning-rate factor: copied layers 1..n get
    `copied_lr_factor`, times the factor `unit_factors` names for a unit; the head gets 1."""
    unit_factors = unit_factors or {}
    by_factor: dict[float, list] = {}
    for i, (name, layer) in enumerate(zip(model.unit_names, model.layers)):
        factor = unit_factors.get(name, 1.0) * (copied_lr_factor if i < n_copied else 1.0)
        by_factor.setdefault(factor, []).extend(p for p in layer.parameters() if p.requires_grad)
    by_factor.setdefault(1.0, []).extend(p for p in model.head.parameters() if p.requires_grad)
    return [
        ParamGroup(params, f, "new" if f == 1.0 else f"x{f:g}")
        for f, params in sorted(by_factor.items(), key=lambda kv: -kv[0])
        if params
    ]
