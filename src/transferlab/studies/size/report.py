"""The dataset-size study's report: a row per net, top-1 by images per class (and its mean per
size), the figure on a log axis with the paper's reduced-data nets beside it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from transferlab import plots
from transferlab.plots import plt
from transferlab.runs import Layout, SizeRun
from transferlab.stats import ROW_KEYS, reported_top1, statistic_of, statistic_text
from transferlab.study_report import SERIES, StudyReport, read_runs, series_means

NOT_RUN = "not run: size.images_per_class is []"


def build(params, layout: Layout, runs: list[SizeRun]) -> StudyReport:
    """The size study's report: its planned nets only."""
    table = size_table(runs, read_runs(runs, layout))
    figures = {"size.png": (lambda out: size_figure(table, out)) if len(table) else NOT_RUN}
    headline = {"runs": int(len(table))} | {
        f"top1_i{k}": float(v) for k, v in table.groupby("images_per_class")["top1"].mean().items()
    }
    return StudyReport(table, headline, figures, plot_data={"size.csv": size_plot_data(table)})


def size_table(runs: list[SizeRun], metrics: list[dict]) -> pd.DataFrame:
    """One row per net: images per class, classes, top-1 (the paper's statistic) and chance."""
    rows = [
        {
            "run_id": str(r),
            "study": "size",
            "images_per_class": r.images_per_class,
            "replicate": r.replicate,
            "classes": m.get("classes"),
            "train_images": m.get("train_images"),
            "top1": reported_top1(m),  # chosen on validation where the run validated
            "statistic": statistic_of(m),
            "chance": 1 / m["classes"] if m.get("classes") else float("nan"),
            "budget": m.get("budget", "epochs"),
            "steps": m["history"][-1]["step"] if m.get("history") else None,  # optimiser steps trained
            **{k: m.get(k) for k in ROW_KEYS},
        }
        for r, m in zip(runs, metrics)
    ]
    columns = [
        "run_id",
        "study",
        "images_per_class",
        "replicate",
        "classes",
        "train_images",
        "top1",
        "statistic",
        "chance",
        "budget",
        "steps",
    ]
    return pd.DataFrame(rows, columns=[*columns, *ROW_KEYS])  # (the columns also when no net ran)


def paper_points() -> pd.DataFrame:
    """The paper's reduced-data nets (ImageNet, 1000 classes; 200,000 iterations): images per
    class and top-1, from the shipped per-network results. Those of 5 to 100 images ended at
    chance (0.0011)."""
    from importlib import resources

    with resources.files("transferlab").joinpath("resources", "yosinski2014_imagenet_top1.csv").open() as f:
        ref = pd.read_csv(f)
    ref = ref[ref.experiment == "reduced_data"]
    return pd.DataFrame(
        {"images_per_class": ref.run.str.removeprefix("images_per_class=").astype(int), "top1": ref.top1}
    ).sort_values("images_per_class")


def size_plot_data(table: pd.DataFrame) -> pd.DataFrame:
    """Mean top-1 by images per class, this study's nets and the paper's."""
    ours = series_means(table, "images_per_class", "top1", pd.Series("this study", index=table.index, dtype=str))
    paper = paper_points().assign(**{SERIES: "the paper (ImageNet, 1000 classes)"})
    return pd.concat([ours, paper[ours.columns]], ignore_index=True)


def size_figure(table: pd.DataFrame, out: Path) -> None:
    """Top-1 against images per class on a log axis: a point per net, the mean line, chance
    dashed; the paper's nets beside, with their own chance (1/1000)."""
    fig, ax = plt.subplots(figsize=(8, 4.8))
    ax.scatter(table.images_per_class, table.top1, s=16, alpha=0.6, color="#1f3fbf", label="a net (this study)")
    plots.mean_line(ax, table, "images_per_class", "top1", "mean (this study)", "#1f3fbf", marker="o")
    chance = table.chance.dropna()
    if len(chance):
        ax.axhline(chance.iloc[0], color="#1f3fbf", linestyle="--", linewidth=0.8, label="chance (this study)")
    paper = paper_points()
    ax.plot(
        paper.images_per_class, paper.top1, color="#c81e1e", marker="s", linestyle=":", label="the paper (ImageNet)"
    )
    ax.axhline(1 / 1000, color="#c81e1e", linestyle="--", linewidth=0.8, label="chance (the paper, 1/1000)")
    ax.set_xscale("log")
    ax.set(xlabel="Training images per class (every class)", ylabel=f"Top-1 ({statistic_text(table.statistic)})")
    ax.set_title(
        f"Top-1 by training set size: {budget_text(table)}\n(the paper: 200,000 iterations each; its 5-100 images per class ended at chance)",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    plots.legend_outside(ax)
    plots.save_figure(fig, out)


def budget_text(table: pd.DataFrame) -> str:
    """How long each net trained, as the figure must say: the same steps for every net, or a
    budget in epochs (fewer images, fewer steps)."""
    steps = sorted(set(table.steps.dropna().astype(int)))
    span = "" if not steps else f"{steps[0]:,} " if len(steps) == 1 else f"{steps[0]:,} to {steps[-1]:,} "
    if set(table.budget) == {"same_steps"}:
        return f"every net {span}optimiser steps (the full-data net's: fewer images repeated)"
    return f"a budget in epochs: {span}optimiser steps (fewer images, fewer steps)"
