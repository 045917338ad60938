"""Linear CKA (Kornblith et al. 2019) with the unbiased minibatch estimator (Nguyen et al.
2021): HSIC_1 of Song et al. 2012, summed over minibatches, in float64."""

from __future__ import annotations

import numpy as np

ESTIMATOR = "linear CKA, unbiased HSIC_1 (Song et al. 2012) summed over minibatches (Nguyen et al. 2021), float64"


def hsic1(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Unbiased HSIC estimator of two n x n kernel matrices (n > 3)."""
    n = len(k)
    k, l = k.copy(), l.copy()  # noqa: E741
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    ones_k, ones_l = k.sum(0), l.sum(0)  # 1^T K, 1^T L
    trace = np.sum(k * l)  # tr(K L) for symmetric matrices
    return float(
        (trace + ones_k.sum() * ones_l.sum() / ((n - 1) * (n - 2)) - 2 / (n - 2) * ones_k @ ones_l) / (n * (n - 3))
    )


def _gram(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    x = x - x.mean(0)
    return x @ x.T


def linear_cka(x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> float:
    """CKA of representations x (n, p) and y (n, q) of the same n inputs."""
    if len(x) != len(y):
        raise ValueError(f"representations of different inputs: {len(x)} vs {len(y)} rows")
    xy = xx = yy = 0.0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        if len(xb) < 4:  # HSIC_1 needs n > 3
            continue
        k, l = _gram(xb), _gram(yb)  # noqa: E741
        xy, xx, yy = xy + hsic1(k, l), xx + hsic1(k, k), yy + hsic1(l, l)
    return float(xy / np.sqrt(xx * yy))


def cka_matrix(xs: list[np.ndarray], ys: list[np.ndarray], batch_size: int = 500) -> np.ndarray:
    """CKA between every representation in xs and every one in ys."""
    return np.array([[linear_cka(x, y, batch_size) for y in ys] for x in xs])
