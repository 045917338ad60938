"""Figures of the strategies study and the cut study."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from transferlab.aggregate import volume_order
from transferlab.plots import interval_note, legend_outside, mean_band, plt, save_figure

COLORS = {"classifier": "#c81e1e", "extra_fc": "#e69f00", "finetune_top": "#1f3fbf", "finetune_all": "#2a9d4b"}


def strategies_figure(df: pd.DataFrame, out: Path) -> None:
    """Top-1 on B against images per class, a line per strategy, a panel per similarity."""
    s = df[df.study == "strategies"]
    panels = [v for v in ("similar", "different", "same") if (s.similarity == v).any()]
    volumes = volume_order(s.images_per_class)
    s = s.assign(volume=s.images_per_class.map(volumes.index))  # categorical x: little to lots
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels) + 2, 4.5), squeeze=False)
    counts = []
    for ax, similarity in zip(axes[0], panels):
        part = s[s.similarity == similarity]
        for name, g in part.groupby("strategy"):
            ax.scatter(g.volume, g.top1, s=14, alpha=0.5, color=COLORS.get(name))
            counts += [i.count for i in mean_band(ax, g, "volume", "top1", name, COLORS.get(name), marker="o")]
        ax.set_xticks(range(len(volumes)), volumes)
        ax.set(xlabel="B's training images per class", ylabel="top-1 on B", title=f"{similarity} tasks")
        ax.grid(alpha=0.3)
    legend_outside(axes[0][-1])
    fig.suptitle(f"Which strategy when ({interval_note(counts)})", fontsize=10)
    save_figure(fig, out)


def cut_figure(df: pd.DataFrame, out: Path) -> None:
    """Top-1 on B against parameters of the net cut after unit n."""
    c = df[df.study == "cut"]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for (source, part), color in zip(c.groupby("source"), ("#1f3fbf", "#2a9d4b")):
        g = part.groupby("n").agg(parameters=("parameters", "first"), top1=("top1", "mean")).reset_index()
        ax.plot(g.parameters, g.top1, marker="o", color=color, label="baseA" if source == "A" else "pretrained")
        ax.scatter(part.parameters, part.top1, s=12, alpha=0.4, color=color)
        for _, row in g.iterrows():
            ax.annotate(f"n={int(row.n)}", (row.parameters, row.top1), textcoords="offset points", xytext=(4, 4), fontsize=8)
    legend_outside(ax)
    ax.set_xscale("log")
    ax.set(xlabel="parameters of the cut net", ylabel="top-1 on B (mean over runs; a point per run)", title="Cutting a net after unit n")
    ax.grid(alpha=0.3)
    save_figure(fig, out)
