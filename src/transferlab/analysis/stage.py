"""The `analyze` stage: per unit n of each analysed net, what the cheap methods predict about
task B (linear probes, LogME, LEEP, H-score), and CKA between units, computed from the
feature cache that the `features` stage wrote (analysis/extract.py). NumPy and
scikit-learn only: no net is run here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from transferlab.analysis import cka, estimates, probes
from transferlab.artifacts import atomic_json, provenance
from transferlab.config import AnalysisConfig
from transferlab.progress import progress_iter


def _units(arrays, prefix: str, depth: int) -> list[np.ndarray]:
    return [arrays[f"{prefix}_{n}"] for n in range(1, depth + 1)]


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def source_rows(name: str, arrays, depth: int, cfg: AnalysisConfig) -> list[dict]:
    """Probes and estimates of every unit of one source net for task B. LEEP needs the source
    task's label distribution: for nets trained on a half, a probe on that half's features at
    each unit; for a net trained elsewhere (pretrained), its own classifier, at the top unit only."""
    b_train_y, b_test_y = arrays["b_train_y"], arrays["b_test_y"]
    own = "own_y" in arrays
    rows = []
    for n in progress_iter(range(1, depth + 1), f"analyse {name}"):
        train, test = arrays[f"b_train_{n}"], arrays[f"b_test_{n}"]
        values = {
            "probe_logreg": probes.probe_top1(train, b_train_y, test, b_test_y, "logreg", cfg.probe_c),
            "probe_svm": probes.probe_top1(train, b_train_y, test, b_test_y, "svm", cfg.probe_c),
            "logme": estimates.logme(train, b_train_y),
            "hscore": estimates.h_score(train, b_train_y),
        }
        if own:
            values["leep"] = estimates.leep(probes.source_probabilities(arrays[f"own_train_{n}"], arrays["own_y"], train, cfg.probe_c), b_train_y)
        elif n == depth:
            values["leep"] = estimates.leep(softmax(arrays["logits_b_train"]), b_train_y)
        rows += [{"method": k, "source": name, "n": n, "m": 0, "value": v} for k, v in values.items()]
    return rows


def analyze(cfg: AnalysisConfig, features: Path, out: Path) -> dict:
    """Write the analysis of one split and replicate as JSON rows (method, source, n, m, value)."""
    index = json.loads((features / "index.json").read_text())
    depth = index["depth"]
    rows: list[dict] = []
    test_features = {}
    for src in index["sources"]:
        with np.load(features / src["file"]) as arrays:
            rows += source_rows(src["name"], arrays, depth, cfg)
            test_features[src["name"]] = _units(arrays, "b_test", depth)
    # CKA on the same held-out images (B's test part): every unit of baseA against every unit of baseB
    matrix = cka.cka_matrix(test_features["A"], test_features["B"], cfg.cka_batch_size)
    rows += [{"method": "cka", "source": "A-B", "n": i + 1, "m": j + 1, "value": float(v)} for (i, j), v in np.ndenumerate(matrix)]
    for net in progress_iter(index["transfer"], "CKA to baseB"):  # each unit of a transfer net on B against the same unit of baseB
        with np.load(features / net["file"]) as arrays:
            for m, (f, g) in enumerate(zip(_units(arrays, "b_test", depth), test_features["B"]), start=1):
                rows.append({"method": "cka_to_base", "source": net["treatment"], "n": net["n"], "m": m, "value": cka.linear_cka(f, g, cfg.cka_batch_size)})
    result = {"split": index["split"], "replicate": index["replicate"], "cka_estimator": cka.ESTIMATOR, "rows": rows, **provenance()}
    atomic_json(result, out)
    return result
