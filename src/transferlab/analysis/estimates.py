"""Transferability estimates from features and labels, implemented from the papers:
LogME (You et al. 2021), LEEP (Nguyen et al. 2020), H-score (Bao et al. 2019)."""

from __future__ import annotations

import numpy as np


def logme(features: np.ndarray, labels: np.ndarray, iterations: int = 100, tol: float = 1e-6) -> float:
    """Log of the maximum evidence of a Bayesian linear model from features to each one-hot
    label column, averaged over classes and divided by n (You et al. 2021, Algorithm 1)."""
    f = np.asarray(features, dtype=np.float64)
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s**2
    evidences = []
    for k in np.unique(labels):
        y = (labels == k).astype(np.float64)
        uy = u.T @ y  # projections on the left singular vectors
        residual_out = y @ y - uy @ uy  # part of y outside the span of F
        alpha, beta = 1.0, 1.0
        for _ in range(iterations):
            gamma = np.sum(beta * sigma / (alpha + beta * sigma))
            m2 = np.sum((beta * s * uy / (alpha + beta * sigma)) ** 2)  # |m|^2
            res2 = np.sum((uy * alpha / (alpha + beta * sigma)) ** 2) + residual_out  # |F m - y|^2
            new_alpha, new_beta = gamma / max(m2, 1e-12), (n - gamma) / max(res2, 1e-12)
            done = abs(new_alpha - alpha) / alpha < tol and abs(new_beta - beta) / beta < tol
            alpha, beta = new_alpha, new_beta
            if done:
                break
        m2 = np.sum((beta * s * uy / (alpha + beta * sigma)) ** 2)
        res2 = np.sum((uy * alpha / (alpha + beta * sigma)) ** 2) + residual_out
        log_det = np.sum(np.log(alpha + beta * sigma)) + (d - len(s)) * np.log(alpha)
        evidence = (
            n * np.log(beta) + d * np.log(alpha) - n * np.log(2 * np.pi) - beta * res2 - alpha * m2 - log_det
        ) / 2
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def leep(source_probs: np.ndarray, labels: np.ndarray) -> float:
    """Log expected empirical prediction: source label distributions theta(x) (n, Z) and
    target labels y (n,). LEEP = mean_i log sum_z P(y_i | z) theta(x_i)_z."""
    theta = np.asarray(source_probs, dtype=np.float64)
    classes = np.unique(labels)
    index = np.searchsorted(classes, labels)
    joint = np.zeros((len(classes), theta.shape[1]))  # P(y, z)
    np.add.at(joint, index, theta)
    joint /= len(labels)
    cond = joint / joint.sum(0, keepdims=True).clip(1e-300)  # P(y | z)
    return float(np.mean(np.log(np.sum(cond[index] * theta, axis=1))))


def h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """tr(cov(f)^+ cov(E[f | y])): how well class-conditional means separate relative to the
    features' spread (population covariances; pseudo-inverse for rank-deficient features)."""
    f = np.asarray(features, dtype=np.float64)
    f = f - f.mean(0)
    g = np.zeros_like(f)
    for k in np.unique(labels):
        g[labels == k] = f[labels == k].mean(0)
    # From the thin SVD of the n x d features, not the d x d covariance: cov(f)^+ is
    # sum_i v_i v_i' n / s_i^2, so the trace is sum_i |g v_i|^2 / s_i^2. The same number in
    # O(n^2 d) instead of O(d^3): AlexNet's fc6 input is 9216 wide, for a few hundred images.
    _, s, vt = np.linalg.svd(f, full_matrices=False)
    keep = s**2 > 1e-10 * (s**2).max(initial=0.0)  # pinv's cutoff (rcond on the eigenvalues)
    return float(np.sum((g @ vt[keep].T) ** 2 / s[keep] ** 2))
