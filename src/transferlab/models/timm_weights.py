"""Weights from timm's releases on the Hugging Face hub: of any timm model (`model.name:
timm/<name>`, a weight tag such as a1_in1k), and MobileNet v1's (`mobilenetv1_100`), which
torchvision does not publish. Read offline from the hub's cache (or a checkpoint file named in
pretrained.cache), checked against the SHA-256 the hub names the file's blob by; MobileNet v1's
are mapped onto this project's MobileNet v1, whose modules have timm's order and shapes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from transferlab.errors import InputError
from transferlab.models import TIMM_PREFIX, TIMM_WEIGHTS, create_model


def hub_cache(cache: str | None) -> Path:
    """The hub's cache folder: pretrained.cache, else $HF_HUB_CACHE, else $HF_HOME/hub."""
    if cache:
        return Path(cache)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache/huggingface")) / "hub"


def hub_repo(model_name: str, tag: str) -> str:
    """The hub repository of a weight tag: timm/<timm's name>.<tag>."""
    name = model_name.removeprefix(TIMM_PREFIX) if model_name.startswith(TIMM_PREFIX) else None
    return f"timm/{name}.{tag}" if name else f"{TIMM_WEIGHTS[model_name][0]}.{tag}"


def timm_tags(model_name: str) -> list[str]:
    """The weight tags timm publishes for timm/<name> (its own registry: no network)."""
    import timm

    name = model_name.removeprefix(TIMM_PREFIX)
    return [found.split(".", 1)[1] for found in timm.list_pretrained(f"{name}.*")]


def weight_file(model_name: str, tag: str, cache: str | None) -> tuple[Path, str]:
    """The weight file (a file named in pretrained.cache, or model.safetensors of the newest
    snapshot in the hub's cache; where it would be if missing) and its hub address."""
    repo = hub_repo(model_name, tag)
    url = f"https://huggingface.co/{repo}"
    if cache and Path(cache).is_file():
        return Path(cache), url
    folder = hub_cache(cache) / f"models--{repo.replace('/', '--')}"
    found = sorted((folder / "snapshots").glob("*/model.safetensors"), key=lambda p: p.stat().st_mtime)
    return (found[-1] if found else folder / "snapshots/<revision>/model.safetensors"), url


def check_blob(path: Path) -> None:
    """The hub's cache links each snapshot file to blobs/<SHA-256 of its content>; a file
    elsewhere (a checkpoint the user names) has no published sum to check."""
    target = path.resolve()
    if target.parent.name != "blobs" or len(target.name) != 64:
        return
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != target.name:
        raise InputError(
            f"pretrained: {path}: SHA-256 {digest[:12]}... differs from the hub's {target.name[:12]}...; download it again (data.verify: false skips the check)"
        )


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file or a torch checkpoint (a state dict, or one under "state_dict")."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # safetensors and torch raise their own types for a damaged file
        raise InputError(f"pretrained: {path} cannot be read as weights ({str(err).splitlines()[0]})") from None
    return state.get("state_dict", state) if isinstance(state, dict) else {}


def timm_keys(blocks_per_stage: tuple[int, ...] = (1, 2, 2, 6, 2)) -> list[str]:
    """mobilenetv1_100's tensor names in the order of its modules (a safetensors file sorts
    them by name): the stem, each block's depthwise conv, BN, pointwise conv, BN, the classifier."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = ["conv_stem.weight", *(f"bn1.{b}" for b in bn)]
    for stage, count in enumerate(blocks_per_stage):
        for i in range(count):
            p = f"blocks.{stage}.{i}."
            keys += [
                f"{p}conv_dw.weight",
                *(f"{p}bn1.{b}" for b in bn),
                f"{p}conv_pw.weight",
                *(f"{p}bn2.{b}" for b in bn),
            ]
    return [*keys, "classifier.weight", "classifier.bias"]


def load_into(net: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Copy timm's tensors into `net`: this MobileNet v1 has timm's modules in timm's order."""
    ours, theirs = net.state_dict(), timm_keys()
    if set(state) != set(theirs) or any(ours[a].shape != state[b].shape for a, b in zip(ours, theirs)):
        raise InputError(
            f"pretrained: {path} does not hold mobilenetv1_100 weights ({len(state)} tensors, expected timm's {len(theirs)} of MobileNet v1's shapes)"
        )
    net.load_state_dict({a: state[b] for a, b in zip(ours, theirs)})


def _checked_file(model_name: str, tag: str, cache: str | None, verify: bool) -> Path:
    path, url = weight_file(model_name, tag, cache)
    if not path.is_file():
        repo = url.removeprefix("https://huggingface.co/")
        raise InputError(
            f"pretrained: {path} is missing; fetch {url} (`huggingface-cli download {repo}` when online) or name a checkpoint file in pretrained.cache"
        )
    if verify:
        check_blob(path)
    return path


def load_timm(model_name: str, tag: str, cache: str | None, verify: bool, classes: list[str]):
    """The pretrained MobileNet v1 and the normalisation its weights expect."""
    path = _checked_file(model_name, tag, cache, verify)
    net = create_model(model_name, len(classes))
    load_into(net, read_state(path), path)
    return net, TIMM_WEIGHTS[model_name][2]


def load_timm_model(model_name: str, tag: str, cache: str | None, verify: bool, imagenet: list[str]):
    """A timm model (timm/<name>) with its published weights, as a LayeredNet; its classes
    (ImageNet-1k's names for a 1000-class head) and the normalisation its weights expect."""
    import timm

    from transferlab.models.timm_nets import from_timm

    path = _checked_file(model_name, tag, cache, verify)
    name = model_name.removeprefix(TIMM_PREFIX)
    cfg = timm.get_pretrained_cfg(f"{name}.{tag}")
    model = timm.create_model(name, pretrained=False, num_classes=cfg.num_classes)
    try:
        model.load_state_dict(read_state(path))
    except RuntimeError as err:
        raise InputError(
            f"pretrained: {path} does not hold {name}.{tag} weights ({str(err).splitlines()[0]})"
        ) from None
    classes = imagenet if cfg.num_classes == len(imagenet) else [f"class {i}" for i in range(cfg.num_classes)]
    return from_timm(model, name), classes, (tuple(cfg.mean), tuple(cfg.std))
