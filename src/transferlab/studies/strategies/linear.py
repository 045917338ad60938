"""The lecture's advice for a different task with little data, measured: "try linear classifiers
from different stages". A logistic regression on each unit's pooled, L2-normalised features of
the source net (baseA or the pretrained net), the unit chosen on a validation part (the data
set's own with data.val_folder, else a share of B's training images), refitted on all of B's
training images, scored on B's test images. No SGD: scikit-learn."""

from __future__ import annotations

import time

import numpy as np
import torch

from transferlab import measurements
from transferlab.accuracy import mean_class_top1, unbalanced
from transferlab.analysis.features import unit_features
from transferlab.analysis.probes import features, fit_probe, probe_top1
from transferlab.artifacts import atomic_json, atomic_torch_save
from transferlab.config import Params
from transferlab.data.files import as_tensor
from transferlab.data.sampling import stratified_holdout
from transferlab.harness import load_checkpoint, run_info, run_measurements, run_metrics
from transferlab.runs import Layout, StrategyRun, seed_of
from transferlab.studies.strategies.train import strategy_fields, target_task
from transferlab.train import History


def choose_unit(
    train: list[np.ndarray],
    y: np.ndarray,
    fraction: float,
    c: float,
    seed: int,
    val: tuple[list[np.ndarray], np.ndarray] | None = None,
) -> tuple[int, list[float]]:
    """Index of the unit whose features give the best validation top-1 (first of ties), and
    every unit's validation top-1: on `val` (features per unit, labels) when given, else on
    `fraction` of each class of the training features, fitted on the rest."""
    if val is not None:
        return _best([probe_top1(f, y, fv, val[1], "logreg", c) for f, fv in zip(train, val[0])])
    fit, held = (i.numpy() for i in stratified_holdout(torch.from_numpy(y), fraction, seed))
    return _best([probe_top1(f[fit], y[fit], f[held], y[held], "logreg", c) for f in train])


def _best(scores: list[float]) -> tuple[int, list[float]]:
    return int(np.argmax(scores)), scores


def best_linear(params: Params, run: StrategyRun, layout: Layout, device: torch.device) -> History:
    """Train the best_linear strategy of one run; write its classifier and metrics.json."""
    started = time.perf_counter()
    cfg = params.strategies
    task = target_task(params, run, layout)
    seed = seed_of(params.seed, str(run))
    net, state = load_checkpoint(layout.source_model(run))
    mean, std = state["input_mean"], state["input_std"]
    first_step_at, fitting = time.time(), time.perf_counter()  # its "training": features and fits
    train = unit_features(net, as_tensor(task.train_x), mean, std, device)
    test = unit_features(net, as_tensor(task.test_x), mean, std, device)
    y, y_test = task.train_y.numpy(), task.test_y.numpy()
    val = (
        None
        if task.val_y is None
        else (unit_features(net, as_tensor(task.val_x), mean, std, device), task.val_y.numpy())
    )
    best, val_scores = choose_unit(train, y, cfg.linear_val_fraction, cfg.linear_c, seed, val)
    clf = fit_probe(train[best], y, "logreg", cfg.linear_c)
    hits = clf.predict(features(test[best])) == y_test
    record = {"epoch": 1.0, "step": 1, "test_top1": float(hits.mean()), "val_top1": val_scores[best]}
    if unbalanced(y_test):  # as the trainer records it
        record["test_mean_class_top1"] = mean_class_top1(hits, y_test)
    history = History(
        records=[record],
        first_step_at=first_step_at,
        train_seconds=time.perf_counter() - fitting,
    )
    atomic_torch_save(
        {
            "run_id": str(run),
            "unit": best + 1,
            "coef": torch.from_numpy(clf.coef_),
            "intercept": torch.from_numpy(clf.intercept_),
            "classes": task.classes,
            "input_mean": mean,
            "input_std": std,
        },
        layout.model(run),
    )
    info = run_info(params, run, layout, seed, device)
    metrics = run_metrics(info, strategy_fields(run, len(y)), history, 1) | {
        "unit_chosen": best + 1,
        "val_top1_by_unit": val_scores,
        "val_from": "val_folder" if val is not None else f"linear_val_fraction {cfg.linear_val_fraction:g}",
    }
    atomic_json(metrics, layout.metrics(run))
    measurements.record(layout.root, str(run), run_measurements(history, started))
    return history
