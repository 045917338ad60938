"""Model registry: `create_model(name, num_classes, **opts)` builds a LayeredNet.

Importing this package imports no torch: the unit names of every architecture are static
metadata (as timm keeps `feature_info`), so `transferlab plan` and the table-only commands
validate n against them without building a net; builders are imported on first use
(torchvision's alone pulls in torch._dynamo, about 2 s)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transferlab.models.layered import LayeredNet

_WRN_UNITS = tuple(f"group{g}.block{b}" for g in (1, 2, 3) for b in (1, 2, 3, 4))
# name -> (module:function of the builder, the names of its transferable units in order)
_CAFFENET_UNITS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")
_REGISTRY: dict[str, tuple[str, tuple[str, ...]]] = {
    "convnet8": ("convnet8:convnet8", _CAFFENET_UNITS),
    "alexnet": ("torchvision_nets:alexnet", _CAFFENET_UNITS),
    "densenet_bc": (
        "torchvision_nets:densenet_bc",
        ("stem", "block1", "transition1", "block2", "transition2", "block3"),
    ),
    "wrn": ("small_nets:wrn", ("stem", *_WRN_UNITS)),
    "mobilenet_v1": ("small_nets:mobilenet_v1", tuple(f"block{i}" for i in range(1, 14))),  # block1 holds the stem
    "resnet18": ("torchvision_nets:resnet18", ("stem", "layer1", "layer2", "layer3", "layer4")),
    "resnet50": ("torchvision_nets:resnet50", ("stem", "layer1", "layer2", "layer3", "layer4")),
    "densenet121": (
        "torchvision_nets:densenet121",
        ("stem", "block1", "transition1", "block2", "transition2", "block3", "transition3", "block4"),
    ),
    "mobilenet_v2": ("torchvision_nets:mobilenet_v2", ("stem", *(f"block{i}" for i in range(1, 18)), "conv_last")),
}

# Smallest input side a model accepts: AlexNet's stride-4 conv1 and three 3x3 max poolings
# leave nothing of a smaller image (the others pool globally).
MIN_IMAGE_SIZE = {"alexnet": 63}


TIMM_PREFIX = "timm/"  # besides the registry: any of timm's convolutional nets, timm/<its name>

# The ImageNet weights a registry model can start from, by the names params.yaml gives them:
# torchvision's weight enums (tests/test_pretrained.py checks them against the installed
# torchvision), and for MobileNet v1, which torchvision does not publish, timm's release
# (repository prefix, weight tags, the input normalisation they expect). Static, as the unit
# names are: checking pretrained.weights then imports no torchvision (about 2 s a command).
TORCHVISION_WEIGHTS: dict[str, tuple[str, ...]] = {
    "alexnet": ("IMAGENET1K_V1",),
    "resnet18": ("IMAGENET1K_V1",),
    "resnet50": ("IMAGENET1K_V1", "IMAGENET1K_V2"),
    "densenet121": ("IMAGENET1K_V1",),
    "mobilenet_v2": ("IMAGENET1K_V1", "IMAGENET1K_V2"),
}
# Every model also accepts a net of its own kind trained elsewhere (by this project, or saved in
# its checkpoint format): data/sources/checkpoint.pt (runs.Layout.source_checkpoint).
CHECKPOINT_WEIGHTS = "checkpoint"
TIMM_WEIGHTS = {"mobilenet_v1": ("timm/mobilenetv1_100", ("ra4_e3600_r224_in1k",), ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))}


def list_models() -> list[str]:
    """Names accepted by `create_model` (and timm/<name> of a timm model)."""
    return sorted(_REGISTRY)


def check_model(name: str) -> None:
    """Refuse (ValueError, one line) a name that is neither in the registry nor a usable timm model."""
    if name.startswith(TIMM_PREFIX):
        from transferlab.models.timm_nets import check_name  # torch and timm: only for timm's names

        check_name(name)
    elif name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}, allowed: {', '.join(list_models())}, or {TIMM_PREFIX}<a timm model>")


def model_units(name: str, **opts) -> list[str]:
    """Names of a model's transferable units, in order (n may be 1..len); no net is built,
    except for a timm model (built once per process: its feature modules are known by instance)."""
    check_model(name)
    if name.startswith(TIMM_PREFIX):
        from transferlab.models.timm_nets import timm_units

        return list(timm_units(name.removeprefix(TIMM_PREFIX)))
    return list(_REGISTRY[name][1])


def weight_names(name: str) -> list[str]:
    """The weight names a model accepts in pretrained.weights: torchvision's (and DEFAULT),
    timm's tags for MobileNet v1 and for timm/<name> (timm's registry, no network), and for
    every model CHECKPOINT_WEIGHTS."""
    if name.startswith(TIMM_PREFIX):
        from transferlab.models.timm_weights import timm_tags  # torch and timm: only for timm's names

        published = timm_tags(name)
    elif name in TIMM_WEIGHTS:
        published = list(TIMM_WEIGHTS[name][1])
    else:
        published = ["DEFAULT", *TORCHVISION_WEIGHTS[name]] if name in TORCHVISION_WEIGHTS else []
    return [*published, CHECKPOINT_WEIGHTS]


def create_model(name: str, num_classes: int, **opts) -> LayeredNet:
    """Build a freshly initialised model of the registry, or timm's."""
    check_model(name)
    module, function = ("timm_nets", "timm_model") if name.startswith(TIMM_PREFIX) else _REGISTRY[name][0].split(":")
    build = getattr(importlib.import_module(f"transferlab.models.{module}"), function)
    return build(name, num_classes, **opts) if module == "timm_nets" else build(num_classes, **opts)


def __getattr__(attr: str):
    if attr == "LayeredNet":  # imports torch: only when asked for
        from transferlab.models.layered import LayeredNet

        return LayeredNet
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = [
    "CHECKPOINT_WEIGHTS",
    "MIN_IMAGE_SIZE",
    "TIMM_PREFIX",
    "TIMM_WEIGHTS",
    "TORCHVISION_WEIGHTS",
    "LayeredNet",
    "check_model",
    "create_model",
    "list_models",
    "model_units",
    "weight_names",
]
