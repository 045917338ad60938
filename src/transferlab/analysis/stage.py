"""The `analyze` stage: per unit n of each analysed net, what the cheap methods predict about
task B (linear probes, LogME, LEEP, H-score), and CKA between units, computed from the
feature cache that the `features` stage wrote (analysis/extract.py). NumPy and
scikit-learn only: no net is run here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from transferlab.accuracy import MEAN_CLASS, mean_class_top1, unbalanced
from transferlab.analysis import DRAWS_FILE, cka, estimates, probes
from transferlab.artifacts import atomic_json, provenance
from transferlab.config import AnalysisConfig
from transferlab.progress import progress_iter


def _units(arrays, prefix: str, depth: int) -> list[np.ndarray]:
    return [arrays[f"{prefix}_{n}"] for n in range(1, depth + 1)]


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _probe(name: str, x, y, test, test_y, kind: str, cfg: AnalysisConfig) -> dict[str, float]:
    """One probe's top-1 on B's test images; where B's test classes are unbalanced, its mean
    per-class accuracy too."""
    hits = probes.probe_hits(x, y, test, test_y, kind, cfg.probe_c, cfg.power)
    scores = {name: float(hits.mean())}
    return scores | ({f"{name}_{MEAN_CLASS}": mean_class_top1(hits, test_y)} if unbalanced(test_y) else {})


def _linear_probes(train, y, test, test_y, cfg: AnalysisConfig) -> dict[str, float]:
    return {
        **_probe("probe_logreg", train, y, test, test_y, "logreg", cfg),
        **_probe("probe_svm", train, y, test, test_y, "svm", cfg),
    }


def _dropout_probes(train, y, test, test_y, dropout, cfg: AnalysisConfig) -> dict[str, float]:
    dropped, dropped_y = probes.dropout_copies(train, y, cfg.dropout_copies, dropout)
    values = {}
    for kind in ("logreg", "svm"):
        values |= _probe(f"probe_{kind}_dropout", dropped, dropped_y, test, test_y, kind, cfg)
    return values


def unit_values(
    train, b_train_y, test, b_test_y, own_train, own_y, logits_b_train, dropout, cfg: AnalysisConfig
) -> dict[str, float]:
    """Probes and estimates of one unit's features for task B. LEEP needs the source task's
    label distribution: a probe on the source task's own features of this unit (own_train),
    or the source net's own classifier outputs (logits_b_train, a net trained elsewhere).
    With a `dropout` generator (a unit of the DeCAF table), each probe also on dropped features.
    Where B's test classes are unbalanced, each probe's mean per-class accuracy as well."""
    values = {
        **_linear_probes(train, b_train_y, test, b_test_y, cfg),
        "logme": estimates.logme(train, b_train_y),
        "hscore": estimates.h_score(train, b_train_y),
    }
    if dropout is not None:
        values |= _dropout_probes(train, b_train_y, test, b_test_y, dropout, cfg)
    if own_train is not None:
        values["leep"] = estimates.leep(probes.source_probabilities(own_train, own_y, train, cfg.probe_c), b_train_y)
    elif logits_b_train is not None:
        values["leep"] = estimates.leep(softmax(logits_b_train), b_train_y)
    return values


def draw_values(train, y, test, test_y, dropout, cfg: AnalysisConfig) -> dict[str, float]:
    """The DeCAF table's probes of one unit on another draw of B's training images."""
    return _linear_probes(train, y, test, test_y, cfg) | _dropout_probes(train, y, test, test_y, dropout, cfg)


def unit_tasks(
    name: str, arrays, depth: int, decaf_units: list[int], seed: list[int], draws: dict[int, np.ndarray]
) -> tuple[list[tuple[str, int, tuple]], list[tuple[str, int, int, tuple]]]:
    """(source, n, arguments of unit_values) for every unit of one source net, on the training
    images of the first data draw; a net trained elsewhere gets LEEP from its own classifier at
    the top unit only. The dropout masks of a DeCAF unit are seeded by `seed` (root seed,
    replicate), n and the draw (the first: by none). Also (source, n, draw, arguments of
    draw_values) for the DeCAF units on each further draw."""
    own = "own_y" in arrays
    (first, rows), *others = draws.items()
    tasks, draw_tasks = [], []
    for n in range(1, depth + 1):
        logits = arrays["logits_b_train"][rows] if not own and n == depth else None
        train, test, y, test_y = arrays[f"b_train_{n}"], arrays[f"b_test_{n}"], arrays["b_train_y"], arrays["b_test_y"]
        args = (
            train[rows],
            y[rows],
            test,
            test_y,
            arrays[f"own_train_{n}"] if own else None,
            arrays["own_y"] if own else None,
            logits,
            np.random.default_rng([*seed, n]) if n in decaf_units else None,
        )
        tasks.append((name, n, args))
        if n in decaf_units:
            draw_tasks += [
                (name, n, d, (train[r], y[r], test, test_y, np.random.default_rng([*seed, n, d]))) for d, r in others
            ]
    return tasks, draw_tasks


def source_rows(tasks: list[tuple[str, int, tuple]], draw_tasks: list, cfg: AnalysisConfig) -> tuple[list, list]:
    """Rows (method, source, n, m, value) of every unit task, and rows (method, source, n,
    draw, value) of every further draw's.

    With one BLAS thread: these fits are small (a few thousand images by a few hundred
    features), and the default analysis took 7.3 s so against 22.9 s with two threads on two
    cores (thread start-up and sync on tiny matrix products), and 12.7 s in two processes."""
    from threadpoolctl import threadpool_limits

    rows, draw_rows = [], []
    with threadpool_limits(1):
        for name, n, args in progress_iter(tasks, "probes and estimates"):
            values = unit_values(*args, cfg)
            rows += [{"method": k, "source": name, "n": n, "m": 0, "value": v} for k, v in values.items()]
        for name, n, d, args in progress_iter(draw_tasks, "probes on further data draws"):
            values = draw_values(*args, cfg)
            draw_rows += [{"method": k, "source": name, "n": n, "draw": d, "value": v} for k, v in values.items()]
    return rows, draw_rows


def analyze(cfg: AnalysisConfig, features: Path, out: Path, seed: int) -> dict:
    """Write the analysis of one split and replicate as JSON rows (method, source, n, m, value)."""
    index = json.loads((features / "index.json").read_text())
    depth = index["depth"]
    with np.load(features / DRAWS_FILE) as saved:
        draws = {d: saved[f"draw_{d}"] for d in index["draws"]}
    tasks, draw_tasks, test_features = [], [], {}
    for src in index["sources"]:
        arrays = dict(np.load(features / src["file"]))
        mine, on_draws = unit_tasks(src["name"], arrays, depth, cfg.decaf_units, [seed, index["replicate"]], draws)
        tasks, draw_tasks = tasks + mine, draw_tasks + on_draws
        test_features[src["name"]] = _units(arrays, "b_test", depth)
    rows, draw_rows = source_rows(tasks, draw_tasks, cfg)
    # CKA on the same held-out images (B's test part): every unit of baseA against every unit of
    # baseB; without base nets (base_nets: []), every unit of the pretrained net against every other
    first, second = ("A", "B") if "A" in test_features else ("P", "P")
    matrix = cka.cka_matrix(test_features[first], test_features[second], cfg.cka_batch_size)
    rows += [
        {"method": "cka", "source": f"{first}-{second}", "n": i + 1, "m": j + 1, "value": float(v)}
        for (i, j), v in np.ndenumerate(matrix)
    ]
    for net in progress_iter(
        index["transfer"], "CKA to baseB"
    ):  # each unit of a transfer net on B against the same unit of baseB
        with np.load(features / net["file"]) as arrays:
            for m, (f, g) in enumerate(zip(_units(arrays, "b_test", depth), test_features["B"]), start=1):
                rows.append(
                    {
                        "method": "cka_to_base",
                        "source": net["treatment"],
                        "n": net["n"],
                        "m": m,
                        "value": cka.linear_cka(f, g, cfg.cka_batch_size),
                    }
                )
    result = {
        "split": index["split"],
        "replicate": index["replicate"],
        "cka_estimator": cka.ESTIMATOR,
        "rows": rows,
        "draw_rows": draw_rows,  # the DeCAF table's probes on the further data draws
        **provenance(),
    }
    atomic_json(result, out)
    return result
