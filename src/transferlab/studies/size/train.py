"""The dataset-size study: a base net on every class of the data set, trained from k images
per class (the paper's reduced-data nets: 1 to 1300 images per class of ImageNet's 1000)."""

from __future__ import annotations

import torch

from transferlab.config import Params
from transferlab.data.dataset import select_classes, task_subset
from transferlab.data.stages import load_dataset
from transferlab.harness import RunInfo, model_options, train_run
from transferlab.models import create_model
from transferlab.runs import SUBSET_SEED, Layout, SizeRun, seed_of
from transferlab.train import History
from transferlab.transfer import param_groups


def train_size(params: Params, run: SizeRun, layout: Layout, device: torch.device) -> History:
    """Train one net on every class from `run.images_per_class` training images of each; the
    subsets are nested (those of the strategies on split "all" too) and the test set is whole."""
    dataset = load_dataset(layout.dataset, params.data.workers)
    task = select_classes(dataset, list(range(len(dataset.classes))))
    task = task_subset(
        task, run.images_per_class, seed_of(params.seed, SUBSET_SEED.format(split=run.split, replicate=run.replicate))
    )
    seed = seed_of(params.seed, str(run))
    torch.manual_seed(seed)
    model = create_model(params.model.name, task.num_classes, **model_options(params))
    groups = param_groups(model, 0, 1.0, params.training("size").layer_lr_factors)
    fields = {
        "images_per_class": run.images_per_class,
        "replicate": run.replicate,
        "classes": task.num_classes,
        "train_images": len(task.train_y),
    }
    return train_run(params, RunInfo(run, seed, params.training("size"), fields), layout, task, model, groups, device)
