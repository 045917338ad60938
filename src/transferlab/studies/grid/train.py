"""The paper's grid: base nets on each half, and for each n the treatments BnB, AnB, BnB+,
AnB+ (and PnB, PnB+ from a pretrained net) and the random control, trained on the target half;
and the random control as the paper ran it, on every class (transfer.control_all_classes)."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from transferlab.artifacts import atomic_torch_save, provenance
from transferlab.config import Params
from transferlab.data.dataset import select_classes
from transferlab.data.stages import load_dataset, task_data
from transferlab.errors import InputError
from transferlab.harness import RunInfo, load_checkpoint, model_options, source_input_stats, train_run
from transferlab.models import CHECKPOINT_WEIGHTS, create_model
from transferlab.runs import AllClassesControl, Layout, RunSpec
from transferlab.train import History
from transferlab.transfer import build_treatment, param_groups


def _info(params: Params, spec: RunSpec) -> RunInfo:
    fields = {
        "split": spec.split,
        "treatment": spec.treatment,
        "source": spec.source or "",
        "target": spec.target,
        "n": spec.n,
        "finetune": spec.finetune,
        "replicate": spec.replicate,
    }
    return RunInfo(spec, spec.seed(params.seed), params.training("base" if spec.is_base else "transfer"), fields)


def train_base(params: Params, spec: RunSpec, layout: Layout, device: torch.device) -> History:
    """Train the base net of one half."""
    task = task_data(layout, spec.split, spec.target, params.data.workers)
    torch.manual_seed(spec.seed(params.seed))
    model = create_model(params.model.name, task.num_classes, **model_options(params))
    groups = param_groups(model, 0, 1.0, params.training("base").layer_lr_factors)
    return train_run(params, _info(params, spec), layout, task, model, groups, device)


def transfer(params: Params, spec: RunSpec, layout: Layout, device: torch.device) -> History:
    """Train one treatment: n layers copied (or random), frozen or fine-tuned, on the target half."""
    task = task_data(layout, spec.split, spec.target, params.data.workers)
    torch.manual_seed(spec.seed(params.seed))
    fresh = create_model(params.model.name, task.num_classes, **model_options(params))
    source_model = layout.source_model(spec)
    source, state = load_checkpoint(source_model) if source_model is not None else (None, {})
    model = build_treatment(fresh, spec.n, source, spec.finetune)
    factor = params.transfer.finetune_lr_factor if source is not None else 1.0
    groups = param_groups(model, spec.n, factor, params.training("transfer").layer_lr_factors)
    return train_run(
        params,
        _info(params, spec),
        layout,
        task,
        model,
        groups,
        device,
        input_stats=source_input_stats(spec.source, state),
    )


def pretrained(params: Params, weights: str, out: Path, layout: Layout) -> list[str]:
    """Convert the published ImageNet weights of model.name (torchvision's, or timm's), or a net
    of that model trained elsewhere (CHECKPOINT_WEIGHTS), into a source-net checkpoint."""
    if weights == CHECKPOINT_WEIGHTS:
        return _trained_source(params, layout.source_checkpoint, out)
    from transferlab.models.pretrained import load_pretrained  # torchvision: about 2 s, this command alone

    net, classes, (mean, std) = load_pretrained(
        params.model.name, weights, params.pretrained.cache, params.data.verify, params.data.download
    )
    _save_source(params, f"pretrained/{params.model.name}/{weights}", net.state_dict(), classes, (mean, std), out)
    return classes


def _trained_source(params: Params, path: Path, out: Path) -> list[str]:
    """A checkpoint of a trained net (this project's format) as the source: its own classes and
    input normalisation; refused in one line unless it is the model (and options) params.yaml names."""
    if not path.is_file():
        raise InputError(
            f"pretrained.weights: {CHECKPOINT_WEIGHTS}: {path} not found; put a trained {params.model.name} there"
        )
    try:
        net, state = load_checkpoint(path)
        classes, stats = state["classes"], (state["input_mean"], state["input_std"])
    except (KeyError, RuntimeError, pickle.UnpicklingError, TypeError, ValueError) as err:
        raise InputError(
            f"{path}: not a checkpoint of a trained net ({type(err).__name__}: {err})".splitlines()[0]
        ) from None
    for key, wanted in (("model_name", params.model.name), ("model_options", model_options(params))):
        if state[key] != wanted:
            raise InputError(f"{path}: {key} {state[key]!r}, but params.yaml gives {wanted!r}")
    run = state.get("run_id", path.name)
    _save_source(
        params, f"pretrained/{params.model.name}/{CHECKPOINT_WEIGHTS}/{run}", net.state_dict(), classes, stats, out
    )
    return classes


def _save_source(params: Params, run_id: str, weights: dict, classes: list[str], stats: tuple, out: Path) -> None:
    mean, std = (torch.as_tensor(s).view(1, 3, 1, 1) for s in stats)  # the normalisation the weights expect
    atomic_torch_save(
        {
            "run_id": run_id,
            "model_name": params.model.name,
            "model_options": model_options(params),
            "num_classes": len(classes),
            "classes": classes,
            "state_dict": weights,
            "input_mean": mean,
            "input_std": std,
            **provenance(),
        },
        out,
    )


def control_all_classes(params: Params, run: AllClassesControl, layout: Layout, device: torch.device) -> History:
    """The paper's random control: a net on every class with its first n units left at random
    initialisation and frozen (n = 0: none, the base it is read against), trained as the
    treatments are (the transfer settings)."""
    dataset = load_dataset(layout.dataset, params.data.workers)
    task = select_classes(dataset, list(range(len(dataset.classes))))
    seed = run.seed(params.seed)
    torch.manual_seed(seed)
    fresh = create_model(params.model.name, task.num_classes, **model_options(params))
    model = build_treatment(fresh, run.n, None, False) if run.n else fresh
    cfg = params.training("transfer")
    groups = param_groups(model, run.n, 1.0, cfg.layer_lr_factors)
    fields = {"split": run.split, "treatment": run.treatment, "source": "R", "target": "all", "n": run.n}
    fields |= {"finetune": False, "replicate": run.replicate, "classes": task.num_classes}
    return train_run(params, RunInfo(run, seed, cfg, fields), layout, task, model, groups, device)
