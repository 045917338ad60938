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


def param_groups(model: LayeredNet, n_copied: int, copied_lr_factor: float) -> list[ParamGroup]:
    """Trainable parameters in two groups: copied layers 1..n (own lr factor) and the rest."""
    copied = [p for i in range(n_copied) for p in model.layers[i].parameters() if p.requires_grad]
    copied_ids = {id(p) for p in copied}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in copied_ids]
    groups = [ParamGroup(rest, 1.0, "new")]
    if copied:
        groups.append(ParamGroup(copied, copied_lr_factor, "copied"))
    return groups
