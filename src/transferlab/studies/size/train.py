"""The dataset-size study: a base net on every class of the data set, trained from k images
per class (the paper's reduced-data nets: 1 to 1300 images per class of ImageNet's 1000)."""

from __future__ import annotations

import torch

from transferlab.config import Params, TrainConfig
from transferlab.data.batches import steps_per_epoch
from transferlab.data.dataset import TaskData, select_classes, task_subset
from transferlab.data.stages import load_dataset
from transferlab.harness import RunInfo, model_options, train_run
from transferlab.models import create_model
from transferlab.runs import SUBSET_SEED, Layout, SizeRun, seed_of
from transferlab.train import History, validation_part
from transferlab.transfer import param_groups


def train_size(params: Params, run: SizeRun, layout: Layout, device: torch.device) -> History:
    """Train one net on every class from `run.images_per_class` training images of each; the
    subsets are nested (those of the strategies on split "all" too) and the test set is whole."""
    dataset = load_dataset(layout.dataset, params.data.workers)
    full = select_classes(dataset, list(range(len(dataset.classes))))
    task = task_subset(
        full, run.images_per_class, seed_of(params.seed, SUBSET_SEED.format(split=run.split, replicate=run.replicate))
    )
    seed = seed_of(params.seed, str(run))
    torch.manual_seed(seed)
    model = create_model(params.model.name, task.num_classes, **model_options(params))
    cfg = params.training("size")
    groups = param_groups(model, 0, 1.0, cfg.layer_lr_factors)
    per_epoch = full_data_steps_per_epoch(full, cfg, seed) if params.size.budget == "same_steps" else None
    fields = {
        "images_per_class": run.images_per_class,
        "replicate": run.replicate,
        "classes": task.num_classes,
        "train_images": len(task.train_y),
        "budget": params.size.budget,
    }
    return train_run(
        params, RunInfo(run, seed, cfg, fields), layout, task, model, groups, device, steps_per_epoch=per_epoch
    )


def full_data_steps_per_epoch(full: TaskData, cfg: TrainConfig, seed: int) -> int:
    """Optimiser steps in an epoch of the net on every training image (after its validation
    part): a size net's epoch under the same_steps budget, so that every net trains as many steps,
    with its warm-up, schedule and evaluations at the same steps."""
    data, _ = validation_part(full, cfg.val_fraction, seed)
    return steps_per_epoch(len(data["train_x"]), cfg.batch_size)
