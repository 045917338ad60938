"""Figures of the binary-partition study, from the binary rows of the tidy table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.aggregate import binary_paired, mean_interval
from transferlab.plots import plt, save_figure


def _errors_by_beta(ax, rows: pd.DataFrame, column: str, title: str, rng: np.random.Generator) -> None:
    """Top-1 error of every run against beta, the mean line and its 95% interval."""
    err = 1 - rows[column]
    ax.scatter(rows.beta + rng.uniform(-0.01, 0.01, len(rows)), err, s=18, alpha=0.6, color="#1f3fbf")
    betas = sorted(rows.beta.unique())
    mi = np.array([mean_interval(err[rows.beta == b]) for b in betas])
    ax.plot(betas, mi[:, 0], color="black", marker="o", linewidth=1.5, label="mean")
    ax.fill_between(betas, mi[:, 0] - mi[:, 1], mi[:, 0] + mi[:, 1], color="black", alpha=0.15, label="95% interval")
    ax.set(xlabel="beta (weight of the binary heads)", ylabel="top-1 error", title=title)
    ax.grid(alpha=0.3)


def beta_figure(df: pd.DataFrame, out: Path) -> None:
    """B error and A error against beta; paired B gains per split (the study's confound)."""
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    _errors_by_beta(axes[0], df[df.treatment == "binaryB"], "b_top1", "Error on B after fine-tuning", rng)
    _errors_by_beta(axes[1], df[df.treatment == "binaryA"], "a_top1", "Error of the A' net on A", rng)
    axes[0].legend(fontsize=8)
    ax = axes[2]
    paired = binary_paired(df)
    for split, g in paired.groupby("split"):
        means = g.groupby("beta").b_gain.mean()
        ax.plot(means.index, means.values, marker="o", label=f"split {split}")
        ax.scatter(g.beta, g.b_gain, s=12, alpha=0.4)
    ax.axhline(0, color="black", linestyle="--", linewidth=0.8)
    ax.set(xlabel="beta", ylabel="top-1 on B minus its beta = 0 control", title="Paired gain on B, per split")
    if len(paired):
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, out)


def tradeoff_figure(df: pd.DataFrame, out: Path) -> None:
    """Per run against its own beta = 0 control: change in A error (x) vs change in B error (y)."""
    paired = binary_paired(df)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    markers = dict(zip(sorted(paired.split.unique()), "osD^vP*X"))
    sc = None
    for split, g in paired.groupby("split"):
        sc = ax.scatter(g.a_loss, -g.b_gain, c=g.beta, cmap="viridis", vmin=0, vmax=1, marker=markers[split], s=40, label=f"split {split}")
    if sc is not None:
        fig.colorbar(sc, ax=ax, label="beta")
        ax.legend(fontsize=8)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set(xlabel="change in A error (A' net minus control)", ylabel="change in B error (fine-tuned minus control)",
           title="Trade-off: lower-left is better on both")  # fmt: skip
    ax.grid(alpha=0.3)
    save_figure(fig, out)
