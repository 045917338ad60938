"""torchvision models with their published ImageNet weights as source nets ("P"), and
MobileNet v1 and any timm model (timm/<name>) with timm's (models/timm_weights.py).

The weights are read from torchvision's cache (`$TORCH_HOME/hub/checkpoints`) or a folder
named in params, checked against the SHA-256 prefix in their file name, loaded into the
torchvision model and regrouped into a LayeredNet by the same adapter as untrained models.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import urlparse

import torch
from torchvision import models as tvm

from transferlab.errors import InputError
from transferlab.models import TIMM_PREFIX, TIMM_WEIGHTS
from transferlab.models.layered import LayeredNet
from transferlab.models.timm_weights import load_timm, load_timm_model
from transferlab.models.torchvision_nets import from_alexnet, from_densenet, from_mobilenet_v2, from_resnet

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the normalisation torchvision's ImageNet weights expect
IMAGENET_STD = (0.229, 0.224, 0.225)
ADAPTERS = {
    "alexnet": from_alexnet,
    "resnet18": from_resnet,
    "resnet50": from_resnet,
    "densenet121": from_densenet,
    "mobilenet_v2": from_mobilenet_v2,
}


def _weights(model_name: str, weights_name: str):
    enum = tvm.get_model_weights(model_name)
    return enum.DEFAULT if weights_name == "DEFAULT" else enum[weights_name]


def weights_path(model_name: str, weights_name: str, cache: str | None) -> tuple[Path, str]:
    """Where the weight file is expected, and the URL torchvision publishes it at."""
    url = _weights(model_name, weights_name).url
    folder = Path(cache) if cache else Path(torch.hub.get_dir()) / "checkpoints"
    return folder / os.path.basename(urlparse(url).path), url


def _check_hash(path: Path) -> None:
    """torchvision's file names end in the first hex digits of the file's SHA-256."""
    match = re.search(r"-([a-f0-9]*)\.", path.name)
    if not match:
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(match.group(1)):
        raise InputError(
            f"pretrained: {path}: SHA-256 {digest[:8]}... differs from the published {match.group(1)}; replace the file (data.verify: false skips the check)"
        )


def _densenet_keys(state: dict) -> dict:
    """Old DenseNet checkpoints name 'norm.1' what the module calls 'norm1' (as torchvision fixes on load)."""
    pattern = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
    )
    return {(m.group(1) + m.group(2) if (m := pattern.match(k)) else k): v for k, v in state.items()}


def load_pretrained(
    model_name: str, weights_name: str, cache: str | None, verify: bool = True, download: bool = False
) -> tuple[LayeredNet, list[str], tuple]:
    """The pretrained net as a LayeredNet, its classes, and the input (mean, std) its weights expect."""
    imagenet = list(tvm.ResNet18_Weights.IMAGENET1K_V1.meta["categories"])  # ImageNet-1k, in every release's order
    if model_name.startswith(TIMM_PREFIX):
        return load_timm_model(model_name, weights_name, cache, verify, imagenet)
    if model_name in TIMM_WEIGHTS:
        net, stats = load_timm(model_name, weights_name, cache, verify, imagenet)
        return net, imagenet, stats
    if model_name not in ADAPTERS:
        raise InputError(
            f"pretrained: {model_name} has no ImageNet weights here; models with weights: {', '.join([*ADAPTERS, *TIMM_WEIGHTS])}, {TIMM_PREFIX}<a timm model>"
        )
    path, url = weights_path(model_name, weights_name, cache)
    if not path.is_file():
        if not download:
            raise InputError(
                f"pretrained: {path} is missing; download {url} and place it there (or set data.download: true when online)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(path), progress=False)
        except OSError as err:
            raise InputError(f"pretrained: download of {url} failed ({err}); place the file at {path}") from None
    if verify:
        _check_hash(path)
    weights = _weights(model_name, weights_name)
    classes = list(weights.meta["categories"])
    net = getattr(tvm, model_name)(weights=None, num_classes=len(classes))
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        net.load_state_dict(_densenet_keys(state) if model_name == "densenet121" else state)
    except RuntimeError as err:
        raise InputError(
            f"pretrained: {path} does not hold {model_name} weights ({str(err).splitlines()[0]})"
        ) from None
    return ADAPTERS[model_name](net), classes, (IMAGENET_MEAN, IMAGENET_STD)
