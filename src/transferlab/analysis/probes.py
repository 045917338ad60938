"""Off-the-shelf features: L2-normalised activations of one unit, a linear classifier on top
(DeCAF, Razavian et al. 2014), fitted with scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def signed_power(x: np.ndarray, power: float) -> np.ndarray:
    """CNNaug's component-wise transform sign(x) |x|^power (power 1: unchanged)."""
    return x if power == 1 else np.sign(x) * np.abs(x) ** power


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, kind: str, c: float, power: float = 1.0):
    """A multinomial logistic regression ("logreg") or a linear SVM ("svm") fitted on the
    L2-normalised features (after the signed power transform); predict with `features()`."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    clf = LogisticRegression(C=c, max_iter=2000) if kind == "logreg" else LinearSVC(C=c, max_iter=5000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the cap on iterations is the budget
        clf.fit(features(train_x, power), train_y)
    return clf


def features(x: np.ndarray, power: float = 1.0) -> np.ndarray:
    """What a probe sees of a unit's activations."""
    return l2_normalize(signed_power(x, power))


def probe_top1(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    kind: str,
    c: float,
    power: float = 1.0,
) -> float:
    """Top-1 on the test part of a probe (fit_probe) fitted on the training part."""
    return float(np.mean(probe_hits(train_x, train_y, test_x, test_y, kind, c, power)))


def probe_hits(train_x, train_y, test_x, test_y, kind: str, c: float, power: float = 1.0) -> np.ndarray:
    """Per test image, whether the probe fitted on the training part classifies it correctly."""
    clf = fit_probe(train_x, train_y, kind, c, power)
    return clf.predict(features(test_x, power)) == test_y


DROPOUT_RATE = 0.5  # DeCAF's dropout on the features


def dropout_copies(
    x: np.ndarray, y: np.ndarray, copies: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """DeCAF's dropout on a probe's training features, as data: `copies` copies of them, each
    with a fresh random half of every row's components zeroed and the rest doubled (inverted
    dropout, so the test features are used as they are)."""
    scale = np.float32(1 / (1 - DROPOUT_RATE))
    dropped = [x * (rng.random(x.shape, dtype=np.float32) >= DROPOUT_RATE) * scale for _ in range(copies)]
    return np.concatenate(dropped), np.tile(y, copies)


def source_probabilities(train_x: np.ndarray, train_y: np.ndarray, x: np.ndarray, c: float) -> np.ndarray:
    """A source-label distribution theta(x) from one unit: a logistic regression fitted on the
    source task's features, applied to the target images (LEEP needs source predictions)."""
    return fit_probe(train_x, train_y, "logreg", c).predict_proba(features(x))
