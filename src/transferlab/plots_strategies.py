"""Figures of the strategies study and the cut study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.aggregate import mean_interval, volume_order
from transferlab.plots import plt, save_figure

COLORS = {"classifier": "#c81e1e", "extra_fc": "#e69f00", "finetune_top": "#1f3fbf", "finetune_all": "#2a9d4b"}


def strategies_figure(df: pd.DataFrame, out: Path) -> None:
    """Top-1 on B against images per class, a line per strategy, a panel per similarity."""
    s = df[df.study == "strategies"]
    panels = [v for v in ("similar", "different") if (s.similarity == v).any()] or ["similar"]
    volumes = volume_order(s.images_per_class)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, similarity in zip(axes[0], panels):
        part = s[s.similarity == similarity]
        for name, g in part.groupby("strategy"):
            mi = np.array([mean_interval(g[g.images_per_class == v].top1) for v in volumes])
            xs = np.arange(len(volumes))
            ax.plot(xs, mi[:, 0], marker="o", color=COLORS.get(name), label=name)
            ax.fill_between(xs, mi[:, 0] - mi[:, 1], mi[:, 0] + mi[:, 1], color=COLORS.get(name), alpha=0.15)
        ax.set_xticks(range(len(volumes)), volumes)
        ax.set(xlabel="B's training images per class", ylabel="top-1 on B", title=f"{similarity} tasks")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, out)


def cut_figure(df: pd.DataFrame, out: Path) -> None:
    """Top-1 on B against parameters of the net cut after unit n."""
    c = df[df.study == "cut"]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for (source, part), color in zip(c.groupby("source"), ("#1f3fbf", "#2a9d4b")):
        g = part.groupby("n").agg(parameters=("parameters", "first"), top1=("top1", "mean")).reset_index()
        ax.plot(g.parameters, g.top1, marker="o", color=color, label="baseA" if source == "A" else "pretrained")
        for _, row in g.iterrows():
            ax.annotate(f"n={int(row.n)}", (row.parameters, row.top1), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set(xlabel="parameters of the cut net", ylabel="top-1 on B", title="Cutting a net after unit n")
    ax.grid(alpha=0.3)
    save_figure(fig, out)
