"""Model registry: `create_model(name, num_classes, **opts)` builds a LayeredNet."""

from __future__ import annotations

from typing import Callable

from transferlab.models import small_nets, torchvision_nets
from transferlab.models.convnet8 import convnet8
from transferlab.models.layered import LayeredNet

_REGISTRY: dict[str, Callable[..., LayeredNet]] = {
    "convnet8": convnet8,
    "densenet_bc": torchvision_nets.densenet_bc,
    "wrn": small_nets.wrn,
    "mobilenet_v1": small_nets.mobilenet_v1,
    "resnet18": torchvision_nets.resnet18,
    "resnet50": torchvision_nets.resnet50,
    "densenet121": torchvision_nets.densenet121,
    "mobilenet_v2": torchvision_nets.mobilenet_v2,
}


def list_models() -> list[str]:
    """Names accepted by `create_model`."""
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int, **opts) -> LayeredNet:
    """Build a freshly initialised model of the registry."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}, allowed: {', '.join(list_models())}")
    return _REGISTRY[name](num_classes, **opts)


def model_units(name: str, **opts) -> list[str]:
    """Names of a model's transferable units, in order (n may be 1..len)."""
    return create_model(name, 2, **opts).unit_names


__all__ = ["LayeredNet", "create_model", "list_models", "model_units"]
