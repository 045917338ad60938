"""Model registry: `create_model(name, num_classes, **opts)` builds a LayeredNet."""

from __future__ import annotations

import importlib
from typing import Callable

from transferlab.models import small_nets
from transferlab.models.convnet8 import convnet8
from transferlab.models.layered import LayeredNet


def _torchvision(name: str) -> Callable[..., LayeredNet]:
    """A builder from torchvision_nets, imported on first use: importing torchvision pulls in
    torch._dynamo (about 2 s), which every run of the other models would otherwise pay."""

    def build(*args, **kwargs) -> LayeredNet:
        return getattr(importlib.import_module("transferlab.models.torchvision_nets"), name)(*args, **kwargs)

    return build


_REGISTRY: dict[str, Callable[..., LayeredNet]] = {
    "convnet8": convnet8,
    "densenet_bc": _torchvision("densenet_bc"),
    "wrn": small_nets.wrn,
    "mobilenet_v1": small_nets.mobilenet_v1,
    "resnet18": _torchvision("resnet18"),
    "resnet50": _torchvision("resnet50"),
    "densenet121": _torchvision("densenet121"),
    "mobilenet_v2": _torchvision("mobilenet_v2"),
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
