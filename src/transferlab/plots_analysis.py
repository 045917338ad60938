"""Figures of the per-layer analysis beside what the trained grid measured, a panel per split kind."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from transferlab.aggregate import STATISTIC
from transferlab.plots import KIND_LABELS, STYLE, X_LABEL, interval_note, kinds_in, legend_outside, mean_band, plt, save_figure


def _grid_lines(ax, grid: pd.DataFrame, treatments=("AnB", "AnB+")) -> None:
    """Mean top-1 of trained treatments per n (from the grid), dashed."""
    for t in treatments:
        rows = grid[grid.treatment == t]
        if len(rows):
            means = rows.groupby("n")[STATISTIC].mean()
            ax.plot(means.index, means.values, linestyle="--", marker=STYLE[t]["marker"], color=STYLE[t]["color"], label=f"{t} (trained)")


def probe_figure(analysis: pd.DataFrame, grid: pd.DataFrame, out: Path) -> None:
    """Probe top-1 on B from each unit of baseA (and baseB), beside AnB and AnB+; a panel per split kind."""
    kinds = kinds_in(analysis)
    fig, axes = plt.subplots(len(kinds), 1, figsize=(9.5, 4.5 * len(kinds)), squeeze=False)
    colors = {("A", "probe_logreg"): "#c81e1e", ("A", "probe_svm"): "#e69f00", ("B", "probe_logreg"): "#1f3fbf", ("B", "probe_svm"): "#56b4e9"}
    counts = []
    for ax, kind in zip(axes[:, 0], kinds):
        a, g = analysis[analysis.split_kind == kind], grid[grid.split_kind == kind]
        for (source, method), color in colors.items():
            rows = a[(a.method == method) & (a.source == source)]
            if len(rows):
                counts += [i.count for i in mean_band(ax, rows, "n", "value", f"{method.split('_')[1]} probe on base{source} features", color, marker="o")]
        for source, rows in a[(a.method == "probe_logreg") & a.source.str.startswith("A'")].groupby("source"):
            mean_band(ax, rows, "n", "value", f"logreg probe on {source} features (binary study)", "#7b3294", linestyle=":", marker="o")
        pretrained = a[(a.method == "probe_logreg") & (a.source == "P")]
        if len(pretrained):
            mean_band(ax, pretrained, "n", "value", "logreg probe on the pretrained net's features", "#2a9d4b", linestyle="-.", marker="o")
        _grid_lines(ax, g)
        ax.set(xlabel="Unit n whose features are probed (or at which the net is chopped)", ylabel="Top-1 on B", title=KIND_LABELS[kind])
        ax.grid(alpha=0.3)
        legend_outside(ax)
    fig.suptitle(f"Off-the-shelf features vs trained transfer ({interval_note(counts)})", fontsize=10)
    save_figure(fig, out)


def cka_figure(analysis: pd.DataFrame, out: Path) -> None:
    """Heat map of CKA between units of baseA (rows) and baseB (columns), and its diagonal; a row per split kind."""
    from transferlab.analysis.cka import ESTIMATOR

    kinds = kinds_in(analysis)
    fig, axes = plt.subplots(len(kinds), 2, figsize=(14, 5 * len(kinds)), squeeze=False)
    for (ax1, ax2), kind in zip(axes, kinds):
        a = analysis[analysis.split_kind == kind]
        rows = a[a.method == "cka"].astype({"n": int, "m": int})
        matrix = rows.groupby(["n", "m"]).value.mean().unstack()
        im = ax1.imshow(matrix.values, vmin=0, vmax=1, cmap="magma", origin="lower")
        ax1.set_xticks(range(len(matrix.columns)), matrix.columns)
        ax1.set_yticks(range(len(matrix.index)), matrix.index)
        ax1.set(xlabel="unit of baseB", ylabel="unit of baseA", title=f"Linear CKA, baseA vs baseB: {KIND_LABELS[kind]}")
        fig.colorbar(im, ax=ax1)
        mean_band(ax2, rows[rows.n == rows.m], "n", "value", "baseA vs baseB, same unit", "black", marker="o")
        to_base = a[(a.method == "cka_to_base") & (a.n == a.m)]
        for t in ("AnB", "AnB+"):
            part = to_base[to_base.source == t]
            if len(part):
                mean_band(ax2, part, "n", "value", f"{t} unit n vs baseB unit n", STYLE[t]["color"], marker="o")
        ax2.set(xlabel=X_LABEL, ylabel="linear CKA", ylim=(0, 1.05), title="Similarity by depth")
        ax2.grid(alpha=0.3)
        legend_outside(ax2)
    fig.text(0.01, 0.0, f"estimator: {ESTIMATOR}", fontsize=7)
    save_figure(fig, out)


def estimates_figure(analysis: pd.DataFrame, grid: pd.DataFrame, out: Path) -> None:
    """LogME, LEEP and H-score of baseA's units for B, each beside the measured AnB top-1; a row per split kind."""
    methods = [("logme", "LogME"), ("leep", "LEEP"), ("hscore", "H-score")]
    kinds = kinds_in(analysis)
    fig, axes = plt.subplots(len(kinds), 3, figsize=(19, 4.8 * len(kinds)), squeeze=False)
    for row, kind in zip(axes, kinds):
        a, g = analysis[analysis.split_kind == kind], grid[grid.split_kind == kind]
        for ax, (method, title) in zip(row, methods):
            for source, color in (("A", "#c81e1e"), ("B", "#1f3fbf")):
                rows = a[(a.method == method) & (a.source == source)]
                if len(rows):
                    mean_band(ax, rows, "n", "value", f"{title} of base{source}", color, bounds=(-float("inf"), float("inf")), marker="o")
            ax.set(xlabel="unit n", ylabel=title, title=f"{title} for task B: {KIND_LABELS[kind]}")
            twin = ax.twinx()
            _grid_lines(twin, g, ("AnB",))
            twin.set_ylabel("AnB top-1 (trained)")
            ax.grid(alpha=0.3)
            handles = [h for x in (ax, twin) for h in x.get_legend_handles_labels()[0]]
            labels = [lab for x in (ax, twin) for lab in x.get_legend_handles_labels()[1]]
            ax.legend(handles, labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
    save_figure(fig, out)
