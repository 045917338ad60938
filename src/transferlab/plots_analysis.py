"""Figures of the per-layer analysis beside what the trained grid measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.aggregate import STATISTIC, mean_interval
from transferlab.analysis.cka import ESTIMATOR
from transferlab.plots import STYLE, X_LABEL, plt, save_figure


def _grid_lines(ax, grid: pd.DataFrame, treatments=("AnB", "AnB+")) -> None:
    """Mean top-1 of trained treatments per n (from the grid), dashed."""
    for t in treatments:
        rows = grid[grid.treatment == t]
        if len(rows):
            means = rows.groupby("n")[STATISTIC].mean()
            ax.plot(means.index, means.values, linestyle="--", marker=STYLE[t]["marker"], color=STYLE[t]["color"], label=f"{t} (trained)")


def _mean_by_n(ax, rows: pd.DataFrame, label: str, **style) -> None:
    g = sorted(rows.groupby("n")["value"], key=lambda kv: kv[0])
    xs = np.array([int(n) for n, _ in g])
    mi = np.array([mean_interval(v) for _, v in g])
    ax.plot(xs, mi[:, 0], marker="o", label=label, **style)
    ax.fill_between(xs, mi[:, 0] - mi[:, 1], mi[:, 0] + mi[:, 1], alpha=0.15, **style)


def probe_figure(analysis: pd.DataFrame, grid: pd.DataFrame, out: Path) -> None:
    """Probe top-1 on B from each unit of baseA (and baseB), beside AnB and AnB+."""
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = {("A", "probe_logreg"): "#c81e1e", ("A", "probe_svm"): "#e69f00", ("B", "probe_logreg"): "#1f3fbf", ("B", "probe_svm"): "#56b4e9"}
    for (source, method), color in colors.items():
        rows = analysis[(analysis.method == method) & (analysis.source == source)]
        if len(rows):
            _mean_by_n(ax, rows, f"{method.split('_')[1]} probe on base{source} features", color=color)
    for source, rows in analysis[(analysis.method == "probe_logreg") & analysis.source.str.startswith("A'")].groupby("source"):
        _mean_by_n(ax, rows, f"logreg probe on {source} features (binary study)", color="#7b3294", linestyle=":")
    pretrained = analysis[(analysis.method == "probe_logreg") & (analysis.source == "P")]
    if len(pretrained):
        _mean_by_n(ax, pretrained, "logreg probe on the pretrained net's features", color="#2a9d4b", linestyle="-.")
    _grid_lines(ax, grid)
    ax.set(xlabel="Unit n whose features are probed (or at which the net is chopped)", ylabel="Top-1 on B", title="Off-the-shelf features vs trained transfer")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, out)


def cka_figure(analysis: pd.DataFrame, out: Path) -> None:
    """Heat map of CKA between units of baseA (rows) and baseB (columns), and its diagonal."""
    rows = analysis[analysis.method == "cka"].astype({"n": int, "m": int})
    matrix = rows.groupby(["n", "m"]).value.mean().unstack()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    im = ax1.imshow(matrix.values, vmin=0, vmax=1, cmap="magma", origin="lower")
    ax1.set_xticks(range(len(matrix.columns)), matrix.columns)
    ax1.set_yticks(range(len(matrix.index)), matrix.index)
    ax1.set(xlabel="unit of baseB", ylabel="unit of baseA", title="Linear CKA, baseA vs baseB")
    fig.colorbar(im, ax=ax1)
    diagonal = rows[rows.n == rows.m]
    _mean_by_n(ax2, diagonal, "baseA vs baseB, same unit", color="black")
    to_base = analysis[(analysis.method == "cka_to_base") & (analysis.n == analysis.m)]
    for t in ("AnB", "AnB+"):
        part = to_base[to_base.source == t]
        if len(part):
            _mean_by_n(ax2, part, f"{t} unit n vs baseB unit n", color=STYLE[t]["color"])
    ax2.set(xlabel=X_LABEL, ylabel="linear CKA", ylim=(0, 1.05), title="Similarity by depth")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.text(0.01, 0.01, f"estimator: {ESTIMATOR}", fontsize=7)
    save_figure(fig, out)


def estimates_figure(analysis: pd.DataFrame, grid: pd.DataFrame, out: Path) -> None:
    """LogME, LEEP and H-score of baseA's units for B, each beside the measured AnB top-1."""
    methods = [("logme", "LogME"), ("leep", "LEEP"), ("hscore", "H-score")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, (method, title) in zip(axes, methods):
        for source, color in (("A", "#c81e1e"), ("B", "#1f3fbf")):
            rows = analysis[(analysis.method == method) & (analysis.source == source)]
            if len(rows):
                _mean_by_n(ax, rows, f"base{source}", color=color)
        ax.set(xlabel="unit n", ylabel=title, title=f"{title} for task B")
        twin = ax.twinx()
        _grid_lines(twin, grid, ("AnB",))
        twin.set_ylabel("AnB top-1 (trained)")
        ax.legend(fontsize=8, loc="upper left")
        twin.legend(fontsize=8, loc="lower right")
        ax.grid(alpha=0.3)
    save_figure(fig, out)
