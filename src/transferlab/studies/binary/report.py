"""The binary study's rows (A' nets and their fine-tuning on B), paired gains, headline numbers, figures."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab import plots
from transferlab.plots import plt
from transferlab.runs import SPLIT_NAME, BinaryRun, Layout
from transferlab.stats import (
    DIFFERENCE,
    ROW_KEYS,
    STATISTIC,
    VAL_SELECTED,
    interval,
    reported_top1,
    split_kind,
    statistic_text,
)
from transferlab.study_report import StudyReport, read_runs, series_means


def build(params, layout: Layout, runs: list[BinaryRun]) -> StudyReport:
    """The binary study's report: its A' nets and their fine-tuning on B, and the heads' curves."""
    metrics = read_runs(runs, layout)
    table, curves = binary_table(runs, metrics), binary_curves(runs, metrics)
    if table.empty:  # binary.betas: []
        figures = dict.fromkeys(
            ("binary_beta.png", "binary_tradeoff.png", "binary_curves.png"),
            "not run: binary.betas is [] in params.yaml",
        )
        return StudyReport(table, {}, figures, plot_data={"beta.csv": beta_plot_data(table)})
    figures = {
        "binary_beta.png": lambda out: beta_figure(table, out),
        "binary_tradeoff.png": lambda out: tradeoff_figure(table, out),
        "binary_curves.png": (lambda out: curves_figure(curves, out)) if len(curves) else "not run: no A' net logged",
    }
    df = pd.concat([t for t in (table, curves) if len(t)], ignore_index=True)
    return StudyReport(df, binary_headline(table), figures, plot_data={"beta.csv": beta_plot_data(table)})


def beta_plot_data(table: pd.DataFrame) -> pd.DataFrame:
    """Mean error on B (per head count and frozen units) and of the A' nets on A (per head
    count) against beta; STATISTIC_NOTE's top-1 on both sides."""
    if table.empty:
        return series_means(table, "beta", "error", pd.Series(dtype=str))
    heads = table.heads.astype(str) + " head(s)"
    b = table[table.treatment == "binaryB"]
    a = table[table.treatment == "binaryA"]
    return pd.concat(
        [
            series_means(
                b.assign(error=1 - b.b_top1),
                "beta",
                "error",
                "error on B, " + heads[b.index] + ", " + b.frozen.astype(str) + " unit(s) frozen",
            ),
            series_means(a.assign(error=1 - a.a_top1), "beta", "error", "error on A, " + heads[a.index]),
        ],
        ignore_index=True,
    )


# One rule for both sides of the study's comparison (A' error on A, error on B after
# fine-tuning), said under the figure: stats.reported_top1.
STATISTIC_NOTE = statistic_text([VAL_SELECTED, STATISTIC])


def binary_table(runs: list[BinaryRun], metrics: list[dict]) -> pd.DataFrame:
    """One row per A' net and per fine-tuning run, each with its A' net's top-1 on A
    (`a_top1`) and, for fine-tuning runs, the top-1 on B (`b_top1`)."""
    by_id = {str(r): m for r, m in zip(runs, metrics)}
    rows = []
    for r, m in zip(runs, metrics):
        rows.append(
            {
                "run_id": str(r),
                "study": "binary",
                "split": r.split,
                "split_kind": split_kind(r.split),
                "replicate": r.replicate,
                "treatment": "binaryA" if r.frozen is None else "binaryB",
                "target": "A" if r.frozen is None else "B",
                "beta": r.beta,
                "heads": r.heads,
                "partition_seed": r.partition_seed,
                "frozen": r.frozen if r.frozen is not None else -1,
                "a_top1": reported_top1(by_id[str(r.source)]),
                "b_top1": reported_top1(m) if r.frozen is not None else float("nan"),
                **{k: m.get(k) for k in ROW_KEYS},
            }
        )
    return pd.DataFrame(rows)


def binary_curves(runs: list[BinaryRun], metrics: list[dict]) -> pd.DataFrame:
    """One row per evaluation of every A' net: the classifier's and the binary heads' test
    top-1 on A (study "binary_curves", for binary_curves.png)."""
    rows = []
    for r, m in zip(runs, metrics):
        if r.frozen is not None:
            continue
        for record in m.get("history", []):
            rows.append(
                {
                    "run_id": str(r),
                    "study": "binary_curves",
                    "split": r.split,
                    "split_kind": split_kind(r.split),
                    "replicate": r.replicate,
                    "beta": r.beta,
                    "heads": r.heads,
                    "partition_seed": r.partition_seed,
                    "epoch": record["epoch"],
                    "top1": record["test_top1"],
                    "binary_top1": record.get("binary_test_top1", float("nan")),
                }
            )
    return pd.DataFrame(rows)


def binary_paired(df: pd.DataFrame) -> pd.DataFrame:
    """Fine-tuning runs with their beta = 0 control (same split, head count, partition seed,
    replicate and frozen units): `b_gain` (top-1 on B minus the control's) and `a_loss`
    (control's top-1 on A minus this A' net's)."""
    b = df[df.treatment == "binaryB"]
    keys = ["split", "heads", "partition_seed", "replicate", "frozen"]
    control = b[b.beta == 0][keys + ["a_top1", "b_top1"]].rename(columns={"a_top1": "a_control", "b_top1": "b_control"})
    out = b[b.beta != 0].merge(control, on=keys, how="inner")
    return out.assign(b_gain=out.b_top1 - out.b_control, a_loss=out.a_control - out.a_top1)


def beta_key(beta: float, heads: int) -> str:
    return f"beta_{beta:g}_h{heads}".replace(".", "p")


def binary_headline(df: pd.DataFrame) -> dict:
    """Per beta and head count: mean paired gain on B and loss on A (95% intervals over the
    pairs), and the gain per split kind and per split (the study found gains confounded with
    the split)."""
    paired = binary_paired(df)
    out = {}
    for (beta, heads), g in paired.groupby(["beta", "heads"]):
        out[beta_key(beta, heads)] = {
            **interval(g.b_gain, DIFFERENCE).fields("b_gain"),
            **interval(g.a_loss, DIFFERENCE).fields("a_loss"),
            "b_gain_by_kind": {k: float(v) for k, v in g.groupby("split_kind").b_gain.mean().items()},
            "b_gain_by_split": {
                SPLIT_NAME.format(split=k): float(v) for k, v in g.groupby("split").b_gain.mean().items()
            },
        }
    return out


# --- figures ---------------------------------------------------------------------------------


HEADS_STYLES = ["-", "--", ":", "-."]


def heads_styles(all_heads: list[int]) -> dict:
    """A line style per head count."""
    return dict(zip(all_heads, itertools.cycle(HEADS_STYLES)))


def _heads_label(heads: int, all_heads: list[int]) -> str:
    """ ", 3 heads" where the head count varies, else nothing."""
    return (
        f", {int(heads)} head{'s' if heads > 1 else ''}" if len(all_heads) > 1 else ""
    )  # (a float in the concatenated table)


def split_looks(df: pd.DataFrame) -> dict:
    """Split id -> (colour, marker): random splits in shades of the random kind's red, each with
    its own marker; a named split in its kind's colour (as in the panels per kind)."""
    random = sorted({s for s, k in zip(df.split, df.split_kind) if k == "random"}, key=str)
    shades = plt.get_cmap("Reds")(np.linspace(0.45, 0.95, max(2, len(random))))
    markers = "osD^vP*Xph<>"
    looks = {s: (shades[i], markers[i % len(markers)]) for i, s in enumerate(random)}
    return looks | {
        s: (plots.KIND_COLORS.get(k, "black"), "s") for s, k in zip(df.split, df.split_kind) if k != "random"
    }


def _errors_by_beta(ax, rows: pd.DataFrame, column: str, title: str, rng: np.random.Generator) -> None:
    """Top-1 error of every run against beta; per split kind and head count, the mean line (a
    line style per head count). No band: errors are absolute levels (plots.mean_line)."""
    rows = rows.assign(error=1 - rows[column])
    all_heads = sorted(rows.heads.unique())
    for kind in plots.kinds_in(rows):
        for heads, style in heads_styles(all_heads).items():
            part = rows[(rows.split_kind == kind) & (rows.heads == heads)]
            color = plots.KIND_COLORS[kind]
            ax.scatter(part.beta + rng.uniform(-0.01, 0.01, len(part)), part.error, s=18, alpha=0.6, color=color)
            label = plots.KIND_LABELS[kind] + _heads_label(heads, all_heads)
            plots.mean_line(ax, part, "beta", "error", label, color, marker="o", linewidth=1.5, linestyle=style)
    ax.set(xlabel="beta (weight of the binary heads)", ylabel="top-1 error", title=title)
    ax.grid(alpha=0.3)


def beta_figure(df: pd.DataFrame, out: Path) -> None:
    """B error and A error against beta, per split kind; paired B gains per split (the study's confound)."""
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    _errors_by_beta(axes[0], df[df.treatment == "binaryB"], "b_top1", "Error on B after fine-tuning", rng)
    _errors_by_beta(axes[1], df[df.treatment == "binaryA"], "a_top1", "Error of the A' net on A", rng)
    ax = axes[2]
    paired = binary_paired(df)
    all_heads = sorted(paired.heads.unique())
    looks, styles = split_looks(paired), heads_styles(all_heads)
    for (split, heads), g in paired.groupby(["split", "heads"]):
        means = g.groupby("beta").b_gain.mean()
        color, marker = looks[split]
        style = styles[heads]
        ax.plot(
            means.index,
            means.values,
            marker=marker,
            color=color,
            linestyle=style,
            label=f"split {split}{_heads_label(heads, all_heads)}",
        )
        ax.scatter(g.beta, g.b_gain, s=12, alpha=0.4, color=color, marker=marker)
    ax.axhline(0, color="black", linestyle="--", linewidth=0.8)
    ax.set(xlabel="beta", ylabel="top-1 on B minus its beta = 0 control", title="Paired gain on B, per split")
    ax.grid(alpha=0.3)
    # the split kinds' legend under the figure: beside a middle panel it would push the panels apart
    handles, labels = axes[1].get_legend_handles_labels()
    if handles:
        fig.legend(
            handles, labels, loc="upper center", bbox_to_anchor=(0.4, 0.0), ncol=len(labels), fontsize=8, frameon=False
        )
    plots.legend_outside(ax, ncol=1 + paired.split.nunique() // 12)
    fig.suptitle(f"The binary-partition study ({plots.ABSOLUTE_NOTE})\nboth sides: {STATISTIC_NOTE}", fontsize=10)
    plots.save_figure(fig, out)


def tradeoff_figure(df: pd.DataFrame, out: Path) -> None:
    """Per run against its own beta = 0 control: change in A error (x) vs change in B error (y)."""
    paired = binary_paired(df)
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    markers = dict(zip(sorted(paired.split.unique()), "osD^vP*Xh<>p8d1234"))
    sc = None
    for split, g in paired.groupby("split"):
        sc = ax.scatter(
            g.a_loss,
            -g.b_gain,
            c=g.beta,
            cmap="viridis",
            vmin=0,
            vmax=1,
            marker=markers.get(split, "o"),
            s=40,
            label=f"split {split}",
        )
    if sc is not None:
        fig.colorbar(sc, ax=ax, label="beta", location="left")
    else:
        ax.text(0.5, 0.5, "no pairs: binary.betas has no beta > 0", transform=ax.transAxes, ha="center")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set(
        xlabel="change in A error (A' net minus control)",
        ylabel="change in B error (fine-tuned minus control)",
        title="Trade-off: lower-left is better on both",
    )
    plots.legend_outside(ax, ncol=1 + paired.split.nunique() // 12)
    ax.grid(alpha=0.3)
    plots.save_figure(fig, out)


def curves_figure(curves: pd.DataFrame, out: Path) -> None:
    """The A' nets' test error on A per evaluation: the classifier's (solid) and the binary
    heads' own (dashed, on their 2-way partitions), a colour per beta, a panel per head count;
    mean over splits, partitions and replicates (no band: absolute levels, see plots.mean_line)."""
    all_heads = sorted(curves.heads.unique())
    fig, axes = plt.subplots(1, len(all_heads), figsize=(7 * len(all_heads) + 2.5, 4.8), squeeze=False, sharey=True)
    betas = sorted(curves.beta.unique())
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(betas)))
    for ax, heads in zip(axes[0], all_heads):
        for beta, color in zip(betas, colors):
            rows = curves[(curves.heads == heads) & (curves.beta == beta)].assign(
                error=lambda r: 1 - r.top1, binary_error=lambda r: 1 - r.binary_top1
            )
            plots.mean_line(ax, rows, "epoch", "error", f"beta {beta:g}: classifier", color, linewidth=1.5)
            heads_rows = rows.dropna(subset=["binary_error"])
            plots.mean_line(
                ax, heads_rows, "epoch", "binary_error", f"beta {beta:g}: binary heads", color, linestyle="--"
            )
        ax.set(
            xlabel="epoch",
            title=f"{int(heads)} binary head{'s' if heads > 1 else ''} ({curves[curves.heads == heads].run_id.nunique()} A' nets)",
        )
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test error on A (heads: on their partitions)")
    plots.legend_outside(axes[0][-1])
    fig.suptitle("A' nets during training (means over runs; at beta 0 the heads are untrained)", fontsize=10)
    plots.save_figure(fig, out)
