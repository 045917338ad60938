"""Any of timm's convolutional nets by name (`model.name: timm/<name>`) as a LayeredNet.

timm publishes where each stage's features come out (`feature_info`); the adapter walks the
model's modules in order as timm's own `features_only` wrapper does, ends a unit at each such
module, and makes the rest (final convolution or norm, pooling, classifier) the head. A model
whose forward pass is not the sequence of its modules (a vision transformer adds position
embeddings in code) is refused: it would not compute what its weights were trained for.
"""

from __future__ import annotations

from functools import cache

import torch
from torch import nn

from transferlab.models import TIMM_PREFIX as PREFIX
from transferlab.models.layered import LayeredNet
from transferlab.models.torchvision_nets import _widths

CHECK_SIZE = 64  # input side of the forward pass that checks the regrouping (and measures widths)


def timm_name(model_name: str) -> str | None:
    """timm's name of a model.name spelled timm/<name>, else None."""
    return model_name.removeprefix(PREFIX) if model_name.startswith(PREFIX) else None


def check_name(model_name: str) -> None:
    """Refuse (ValueError, one line) a name timm does not know or a net that is not a sequence."""
    import timm

    name = timm_name(model_name)
    if name not in timm.list_models():
        raise ValueError(f"unknown timm model {name!r} (timm.list_models() names them, e.g. resnet18, convnext_atto)")
    timm_units(name)


def _grouped(model: nn.Module) -> tuple[list[nn.Module], list[str], nn.Module]:
    """The model's modules in forward order, cut after each feature module: units, their names,
    head. As timm's features_only wrapper, with the first level of sequential containers
    flattened where the feature modules are inside them (efficientnet's blocks.n), else not."""
    from timm.models._features import _module_list

    ends = [info["module"] for info in model.feature_info]
    for flatten in (False, True):
        units, names, current = [], [], []
        for _, old_name, module in _module_list(model, flatten_sequential=flatten):
            current.append(module)
            if old_name in ends:
                units.append(nn.Sequential(*current))
                names.append(old_name)
                current = []
        if names == ends:
            return units, names, nn.Sequential(*current)
    raise ValueError(f"its feature modules {ends} are not children of the model in forward order")


def from_timm(model: nn.Module, name: str) -> LayeredNet:
    """A timm model regrouped into units (timm's modules, so timm's weight names within each);
    refused unless the regrouped net computes what the model does."""
    try:
        units, names, head = _grouped(model)
    except ValueError as err:
        raise ValueError(f"timm model {name!r}: {err}") from None
    x = torch.randn(2, 3, CHECK_SIZE, CHECK_SIZE, generator=torch.Generator().manual_seed(0))
    try:
        net = LayeredNet(units, head, names, _widths(units, CHECK_SIZE))
        model.eval(), net.eval()
        with torch.no_grad():
            same = torch.allclose(net(x), model(x), atol=1e-5)
        model.train(), net.train()
    except Exception:  # noqa: BLE001 (timm asserts input sizes, shapes mismatch: any failure is a refusal)
        same = False
    if not same:
        raise ValueError(
            f"timm model {name!r} does not run as the sequence of its modules (a transformer, or code between "
            "them): its stages cannot be copied unit by unit; convolutional nets such as resnet18, convnext_atto, "
            "efficientnet_b0 can"
        )
    return net


def timm_model(model_name: str, num_classes: int, **_) -> LayeredNet:
    """A freshly initialised timm model (timm's own defaults: width and dropout options are
    for the project's nets) as a LayeredNet."""
    import timm

    name = timm_name(model_name)
    return from_timm(timm.create_model(name, pretrained=False, num_classes=num_classes), name)


@cache
def timm_units(name: str) -> tuple[str, ...]:
    """The unit names of a timm model (its feature modules), from a net built once per process."""
    return tuple(timm_model(PREFIX + name, 2).unit_names)
