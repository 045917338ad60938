"""Figures of the binary-partition study, from the binary rows of the tidy table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.aggregate import binary_paired
from transferlab.plots import KIND_COLORS, KIND_LABELS, interval_note, kinds_in, legend_outside, mean_band, plt, save_figure


def _errors_by_beta(ax, rows: pd.DataFrame, column: str, title: str, rng: np.random.Generator) -> list[int]:
    """Top-1 error of every run against beta; per split kind, the mean line and its interval."""
    rows = rows.assign(error=1 - rows[column])
    counts = []
    for kind in kinds_in(rows):
        part = rows[rows.split_kind == kind]
        color = KIND_COLORS[kind]
        ax.scatter(part.beta + rng.uniform(-0.01, 0.01, len(part)), part.error, s=18, alpha=0.6, color=color)
        counts += [i.count for i in mean_band(ax, part, "beta", "error", KIND_LABELS[kind], color, marker="o", linewidth=1.5)]
    ax.set(xlabel="beta (weight of the binary heads)", ylabel="top-1 error", title=title)
    ax.grid(alpha=0.3)
    return counts


def beta_figure(df: pd.DataFrame, out: Path) -> None:
    """B error and A error against beta, per split kind; paired B gains per split (the study's confound)."""
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    counts = _errors_by_beta(axes[0], df[df.treatment == "binaryB"], "b_top1", "Error on B after fine-tuning", rng)
    counts += _errors_by_beta(axes[1], df[df.treatment == "binaryA"], "a_top1", "Error of the A' net on A", rng)
    ax = axes[2]
    paired = binary_paired(df)
    for split, g in paired.groupby("split"):
        means = g.groupby("beta").b_gain.mean()
        color = KIND_COLORS.get(g.split_kind.iloc[0]) if g.split_kind.iloc[0] != "random" else None
        ax.plot(means.index, means.values, marker="o", color=color, label=f"split {split}")
        ax.scatter(g.beta, g.b_gain, s=12, alpha=0.4, color=color)
    ax.axhline(0, color="black", linestyle="--", linewidth=0.8)
    ax.set(xlabel="beta", ylabel="top-1 on B minus its beta = 0 control", title="Paired gain on B, per split")
    ax.grid(alpha=0.3)
    legend_outside(axes[1])
    legend_outside(ax, ncol=1 + paired.split.nunique() // 12)
    fig.suptitle(f"The binary-partition study ({interval_note(counts)})", fontsize=10)
    save_figure(fig, out)


def tradeoff_figure(df: pd.DataFrame, out: Path) -> None:
    """Per run against its own beta = 0 control: change in A error (x) vs change in B error (y)."""
    paired = binary_paired(df)
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    markers = dict(zip(sorted(paired.split.unique()), "osD^vP*Xh<>p8d1234"))
    sc = None
    for split, g in paired.groupby("split"):
        sc = ax.scatter(g.a_loss, -g.b_gain, c=g.beta, cmap="viridis", vmin=0, vmax=1, marker=markers.get(split, "o"), s=40, label=f"split {split}")
    if sc is not None:
        fig.colorbar(sc, ax=ax, label="beta", location="left")
    else:
        ax.text(0.5, 0.5, "no pairs: binary.betas has no beta > 0", transform=ax.transAxes, ha="center")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set(xlabel="change in A error (A' net minus control)", ylabel="change in B error (fine-tuned minus control)",
           title="Trade-off: lower-left is better on both")  # fmt: skip
    legend_outside(ax, ncol=1 + paired.split.nunique() // 12)
    ax.grid(alpha=0.3)
    save_figure(fig, out)
