"""The `analyze` stage: per unit n of baseA and baseB, what the cheap methods predict about
task B (linear probes, LogME, LEEP, H-score), and CKA between units of the nets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from transferlab.analysis import cka, estimates, probes
from transferlab.analysis.features import logits, unit_features
from transferlab.artifacts import atomic_json, provenance
from transferlab.config import Params
from transferlab.data.batches import channel_stats, random_crop_flip
from transferlab.data.dataset import TaskData, per_class_subset, select_classes
from transferlab.progress import progress_iter
from transferlab.runs import planned_runs


def _images(task: TaskData, part: str, per_class: int | None, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    x, y = (task.train_x, task.train_y) if part == "train" else (task.test_x, task.test_y)
    keep = per_class_subset(y, per_class, seed)
    return x[keep], y[keep].numpy()


def _augmented(x: torch.Tensor, y: np.ndarray, copies: int, padding: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """The "CNNaug" variant: the training images plus `copies` randomly cropped and flipped copies."""
    gen = torch.Generator().manual_seed(seed)
    xs = [x] + [random_crop_flip(x, padding, gen) for _ in range(copies)]
    return torch.cat(xs), np.tile(y, copies + 1)


def _input_stats(state: dict, task: TaskData) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalisation the net was trained with (stored with newer checkpoints)."""
    if "input_mean" in state:
        return state["input_mean"], state["input_std"]
    return channel_stats(task.train_x)


def _sources(params: Params, models: Path, binary_models: Path | None, replicate: int) -> list[tuple[str, Path, str | None]]:
    """(name, checkpoint, the half it was trained on): baseA, baseB, the binary study's A'
    nets of every beta > 0 (first partition seed) when asked for, and the pretrained net
    (trained on neither half) when params name one; it sits in data/models/pretrained."""
    out: list[tuple[str, Path, str | None]] = [(h, models / f"base{h}" / f"r{replicate}.pt", h) for h in ("A", "B")]
    if params.analysis.binary_sources and binary_models is not None:
        p = params.binary.partition_seeds[0]
        out += [(f"A'{b:g}", binary_models / f"binA_b{b!r}_p{p}" / f"r{replicate}.pt", "A") for b in params.binary.betas if b > 0]
    out += [("P", models.parent / "pretrained" / f"{w}.pt", None) for w in params.pretrained.weights]
    return out


def source_rows(name: str, net, mean, std, b_data: tuple, own: tuple | None, cfg, device) -> list[dict]:
    """Probes and estimates of every unit of one source net for task B. LEEP needs the source
    task's label distribution: for nets trained on a half, a probe on that half's features at
    each unit; for a net trained elsewhere (pretrained), its own classifier, at the top unit only."""
    b_train_x, b_train_y, b_test_x, b_test_y = b_data
    fb_train = unit_features(net, b_train_x, mean, std, device)
    fb_test = unit_features(net, b_test_x, mean, std, device)
    fs_train = unit_features(net, own[0], mean, std, device) if own is not None else None
    rows = []
    for i in progress_iter(range(net.depth), f"analyse {name}"):
        values = {
            "probe_logreg": probes.probe_top1(fb_train[i], b_train_y, fb_test[i], b_test_y, "logreg", cfg.probe_c),
            "probe_svm": probes.probe_top1(fb_train[i], b_train_y, fb_test[i], b_test_y, "svm", cfg.probe_c),
            "logme": estimates.logme(fb_train[i], b_train_y),
            "hscore": estimates.h_score(fb_train[i], b_train_y),
        }
        if fs_train is not None:
            values["leep"] = estimates.leep(probes.source_probabilities(fs_train[i], own[1], fb_train[i], cfg.probe_c), b_train_y)
        elif i == net.depth - 1:
            values["leep"] = estimates.leep(softmax(logits(net, b_train_x, mean, std, device)), b_train_y)
        rows += [{"method": k, "source": name, "n": i + 1, "m": 0, "value": v} for k, v in values.items()]
    return rows, fb_test


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def analyze(params: Params, split_id: str, replicate: int, dataset: Path, split_file: Path, models: Path, out: Path, device: torch.device,
            binary_models: Path | None = None) -> dict:  # fmt: skip
    """Write the analysis of one split and replicate as JSON rows (method, source, n, m, value)."""
    from transferlab.stages import load_dataset, load_model, load_split

    cfg = params.analysis
    ds, split = load_dataset(dataset), load_split(split_file)
    tasks = {h: select_classes(ds, split.half(h)) for h in ("A", "B")}
    b_train_x, b_train_y = _images(tasks["B"], "train", cfg.max_train_per_class, params.seed)
    if cfg.augment_copies:
        b_train_x, b_train_y = _augmented(b_train_x, b_train_y, cfg.augment_copies, params.base.crop_padding, params.seed)
    b_test_x, b_test_y = _images(tasks["B"], "test", None, params.seed)
    own = {h: _images(tasks[h], "train", cfg.max_train_per_class, params.seed) for h in ("A", "B")}  # each source's own task
    rows: list[dict] = []
    test_features = {}
    for source, path, half in _sources(params, models, binary_models, replicate):
        state = torch.load(path, map_location="cpu", weights_only=True)
        net, (mean, std) = load_model(path), _input_stats(state, tasks[half or "B"])
        b_data = (b_train_x, b_train_y, b_test_x, b_test_y)
        source_part, test_features[source] = source_rows(source, net, mean, std, b_data, own[half] if half else None, cfg, device)
        rows += source_part
    # CKA on the same held-out images (B's test part): every unit of baseA against every unit of baseB
    matrix = cka.cka_matrix(test_features["A"], test_features["B"], cfg.cka_batch_size)
    rows += [{"method": "cka", "source": "A-B", "n": i + 1, "m": j + 1, "value": float(v)} for (i, j), v in np.ndenumerate(matrix)]
    rows += _cka_to_base(params, split_id, replicate, models, b_test_x, test_features["B"], tasks["B"], device)
    result = {"split": split_id, "replicate": replicate, "cka_estimator": cka.ESTIMATOR, "rows": rows, **provenance()}
    atomic_json(result, out)
    return result


def _cka_to_base(params: Params, split_id: str, replicate: int, models: Path, x: torch.Tensor, base_features: list[np.ndarray], task: TaskData, device) -> list[dict]:
    """CKA between each unit of every transfer net on B and the same unit of baseB."""
    from transferlab.stages import load_model

    rows = []
    specs = [s for s in planned_runs(params) if s.split == split_id and s.replicate == replicate and not s.is_base and s.target == "B"]
    for spec in progress_iter(specs, "CKA to baseB"):
        path = models / f"{str(spec).split('/')[1]}" / f"r{replicate}.pt"
        state = torch.load(path, map_location="cpu", weights_only=True)
        mean, std = _input_stats(state, task)
        feats = unit_features(load_model(path), x, mean, std, device)
        for i, (f, g) in enumerate(zip(feats, base_features)):
            rows.append({"method": "cka_to_base", "source": spec.treatment, "n": spec.n, "m": i + 1, "value": cka.linear_cka(f, g, params.analysis.cka_batch_size)})
    return rows
