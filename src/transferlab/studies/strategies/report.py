"""The strategies' and cut nets' rows, the measured take-home table, the cut table, figures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from transferlab import plots
from transferlab.config.sections import DISSIMILAR_SPLITS
from transferlab.models import model_units
from transferlab.plots import plt
from transferlab.runs import Layout, StrategyRun
from transferlab.stats import DIFFERENCE, ROW_KEYS, interval, reported_top1, split_kind, statistic_of, statistic_text
from transferlab.study_report import StudyReport, read_runs, series_means

# Random splits are similar tasks, every dissimilar named split a different one; "all" is B itself.
SIMILARITY = {"random": "similar", **{kind: "different" for kind in DISSIMILAR_SPLITS}, "all": "same"}
CUT_KEYS = (
    "parameters",
    "flops_per_image",
    "flops_method",
    "size_bytes",
    "peak_memory_bytes",
    "peak_memory_method",
    "latency_batch",
)


def build(params, layout: Layout, runs: list[StrategyRun]) -> StudyReport:
    """The strategies' report: its planned strategy and cut runs, the take-home and cut tables."""
    df = strategy_table(runs, read_runs(runs, layout))
    ran = set(df["study"]) if "study" in df else set()
    figures = {
        "strategies.png": (lambda out: strategies_figure(df, out))
        if "strategies" in ran
        else "not run: strategies.names is []",
        "cut.png": (lambda out: cut_figure(df, out)) if "cut" in ran else "not run: strategies.cut_layers is []",
    }
    texts = {
        "take_home.md": take_home(df),
        "cut.md": cut_table(df, model_units(params.model.name, **params.model.options())),
    }
    return StudyReport(df, {"runs": int(len(df))}, figures, texts, {"strategies.csv": strategies_plot_data(df)})


def strategies_plot_data(df: pd.DataFrame) -> pd.DataFrame:
    """Mean top-1 on B by images per class (little to lots, a label each: "all" is one), a
    series per strategy and similarity."""
    s = df[df.study == "strategies"] if "study" in df else df
    if s.empty:
        return series_means(s, "images_per_class", "top1", pd.Series(dtype=str))
    order = volume_order(s.images_per_class)
    s = s.sort_values("images_per_class", key=lambda v: v.map(order.index), kind="stable")
    return series_means(s, "images_per_class", "top1", s.strategy + ", " + s.similarity + " tasks")


def strategy_table(runs, metrics: list[dict]) -> pd.DataFrame:
    """One row per strategy or cut run; `top1` is the paper's statistic on B's test images."""
    rows = []
    for r, m in zip(runs, metrics):
        kind = split_kind(r.split)
        name = r.name + (
            " (pretrained)" if r.source == "P" and r.name != "cut" else ""
        )  # a strategy from the pretrained net competes as its own
        rows.append(
            {
                "run_id": str(r),
                "study": "strategies" if r.name != "cut" else "cut",
                "split": r.split,
                "split_kind": kind,
                "similarity": SIMILARITY.get(kind, kind),
                "replicate": r.replicate,
                "treatment": "cut" if r.name == "cut" else f"strategy:{name}",
                "strategy": name,
                "source": r.source,
                "images_per_class": str(r.images_per_class),
                "n": r.n,
                "target": "B",
                "top1": reported_top1(m),  # chosen on validation where the run validated
                "statistic": statistic_of(m),
                **{k: m.get(k) for k in ROW_KEYS},
                **{k: m.get(k) for k in CUT_KEYS if r.name == "cut"},
                # with a validation part (val_fraction, or data.val_folder): the study's val_acc and test_acc
                "val_top1": m.get("best_val_top1"),
                "test_top1_at_best_val": m.get("test_top1_at_best_val"),
            }
        )
    return pd.DataFrame(rows)


# The lecture's 2x2 advice (similarity x data volume), printed beside what was measured.
LECTURE_ADVICE = {
    ("similar", "little"): "linear classifier on the top layer",
    ("similar", "lots"): "fine-tune a few layers",
    ("different", "little"): "in trouble: try linear classifiers from different stages",
    ("different", "lots"): "fine-tune a larger number of layers",
}


def volume_order(values) -> list[str]:
    """Images-per-class labels from little to lots ("all" last)."""
    return sorted(set(values), key=lambda v: float("inf") if v == "all" else int(v))


def take_home(df: pd.DataFrame) -> str:
    """The lecture's 2x2 table, measured: the best strategy per (similarity, data volume) cell,
    its margin over the runner-up (paired over splits and replicates, with a 95% interval from 3 pairs)."""
    s = df[df.study == "strategies"] if "study" in df else df
    transfer = s[s.source != "none"] if "source" in s else s  # the strategies compete; scratch is what they beat
    if transfer.empty:
        return "# Which strategy when\n\nNot run: strategies.names is [] in params.yaml.\n"
    volumes = volume_order(s.images_per_class) if len(s) else []
    columns = {"little": volumes[0] if volumes else None, "lots": volumes[-1] if volumes else None}
    lines = [
        f"# Which strategy when: measured (top-1 on B: {statistic_text(s.statistic if 'statistic' in s else [])})",
        "",
        f"Data volume: little = {columns['little']} images per class, lots = {columns['lots']}. Similarity: random splits are similar, man-made/natural and cross-data-set splits different.",
        "",
        "| | little data | lots of data |",
        "|---|---|---|",
    ]
    for similarity in ("similar", "different"):
        cells = [
            _cell(
                transfer[(transfer.similarity == similarity) & (transfer.images_per_class == str(columns[v]))],
                LECTURE_ADVICE[(similarity, v)],
                similarity,
            )
            for v in ("little", "lots")
        ]
        lines.append(f"| **{similarity}** | {cells[0]} | {cells[1]} |")
    return "\n".join(lines + transfer_gains(s, columns)) + "\n"


def transfer_gains(s: pd.DataFrame, columns: dict) -> list[str]:
    """Lines of the take-home file's second table: each strategy's top-1 minus the scratch net's
    (no transfer) of the same split, replicate and data volume, with a 95% interval from 3 pairs."""
    if not (s.source == "none").any():
        return ["", "No transfer: not run (strategies.baselines is [])."]
    cells = [(sim, v) for sim in ("similar", "different") for v in ("little", "lots")]
    lines = [
        "",
        "## What transfer buys: top-1 minus that of the same net trained from scratch on B (no transfer)",
        "",
        "Paired by split, replicate and data volume; in brackets the 95% interval (none from fewer than 3 pairs).",
        "",
        "| strategy | "
        + " | ".join(f"{sim}, {'little data' if v == 'little' else 'lots of data'}" for sim, v in cells)
        + " |",
        "|---|" + "---|" * len(cells),
    ]
    for name in [n for n in s.strategy.unique() if n != "scratch"]:
        row = []
        for sim, v in cells:
            part = s[(s.similarity == sim) & (s.images_per_class == str(columns[v]))]
            paired = part.pivot_table(index=["split", "replicate"], columns="strategy", values="top1")
            if name not in paired or "scratch" not in paired:
                row.append("-")
                continue
            gain = interval(paired[name] - paired["scratch"], DIFFERENCE)
            row.append(f"{gain.text(signed=True)} ({gain.count} pair(s))")
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    scratch = s[s.strategy == "scratch"].groupby(["similarity", "images_per_class"]).top1.mean()
    order = {v: i for i, v in enumerate(volume_order(s.images_per_class))}
    keys = sorted(scratch.index, key=lambda key: (key[0] != "similar", order[key[1]]))
    lines += [
        "",
        "The scratch nets' own top-1 (mean): "
        + ", ".join(f"{sim}, {k} images per class: {scratch[(sim, k)]:.3f}" for sim, k in keys),
    ]
    return lines


def _cell(rows: pd.DataFrame, advice: str, similarity: str) -> str:
    if rows.empty:
        hint = "add mn, nm or classes to splits" if similarity == "different" else "add a seed to splits"
        return f"not measured ({hint}); lecture: {advice}"
    means = rows.groupby("strategy").top1.mean().sort_values(ascending=False)
    best = means.index[0]
    if len(means) < 2:
        return f"**{best}** {means.iloc[0]:.3f}; lecture: {advice}"
    second = means.index[1]
    paired = rows.pivot_table(index=["split", "replicate"], columns="strategy", values="top1")
    margin = interval(paired[best] - paired[second], DIFFERENCE)
    return f"**{best}** {means.iloc[0]:.3f}, {margin.text(signed=True)} over {second} ({margin.count} pair(s)); lecture: {advice}"


def cut_table(df: pd.DataFrame, unit_names: list[str]) -> str:
    """Per n: parameters, size on disk, peak inference memory, top-1 on B (latency is a
    measurement, kept apart: data/measurements/<run id>.json)."""
    c = df[df.study == "cut"] if "study" in df else df
    if c.empty:
        return "# baseA cut after unit n\n\nNot run: strategies.cut_layers is [] in params.yaml.\n"
    val = c.val_top1.notna().any() if "val_top1" in c else False
    lines = [
        "# baseA cut after unit n, with pooling and a new classifier, fine-tuned on B",
        "",
        f"| n | unit | parameters | MFLOPs per image | size (MB) | peak memory (MB) | top-1 on B |{' val top-1 | test top-1 at the best val |' if val else ''}",
        f"|---|---|---|---|---|---|---|{'---|---|' if val else ''}",
    ]
    for (source, n), g in c.groupby(["source", "n"]):
        name = unit_names[int(n) - 1] if int(n) <= len(unit_names) else ""
        whole = " (the whole net: baseB+)" if int(n) == len(unit_names) else ""
        lines.append(
            f"| {int(n)} | {name}{' (pretrained)' if source == 'P' else ''}{whole} | {int(g.parameters.iloc[0]):,} | {_mflops(g)} | {g.size_bytes.mean() / 1e6:.2f} | {g.peak_memory_bytes.mean() / 1e6:.2f} "
            f"| {g.top1.mean():.3f} |"
            + (f" {g.val_top1.mean():.3f} | {g.test_top1_at_best_val.mean():.3f} |" if val else "")
        )
    lines += [
        "",
        f"FLOPs: {_first(c, 'flops_method')}. Peak memory: {c.peak_memory_method.iloc[0]}, for a batch of {int(c.latency_batch.iloc[0])} on {c.device.iloc[0]}. "
        "Latency per image (median of timed batches after warm-up) is a measurement, kept apart from this "
        "table so that a rerun gives the same bytes: `latency_s_per_image` in data/measurements/<run id>.json.",
    ]
    return "\n".join(lines) + "\n"


def _mflops(g: pd.DataFrame) -> str:
    """Millions of FLOPs per image of a cut net ("-" for runs measured before FLOPs were counted)."""
    v = g.flops_per_image.iloc[0] if "flops_per_image" in g else None
    return "-" if v is None or pd.isna(v) else f"{v / 1e6:,.2f}"


def _first(c: pd.DataFrame, column: str) -> str:
    values = c[column].dropna() if column in c else []
    return str(values.iloc[0]) if len(values) else "not counted"


# --- figures ---------------------------------------------------------------------------------

COLORS = {
    "classifier": "#c81e1e",
    "extra_fc": "#e69f00",
    "finetune_top": "#1f3fbf",
    "finetune_all": "#2a9d4b",
    "scratch": "#555555",  # no transfer
}


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
            counts += [i.count for i in plots.mean_band(ax, g, "volume", "top1", name, COLORS.get(name), marker="o")]
        ax.set_xticks(range(len(volumes)), volumes)
        ax.set(xlabel="B's training images per class", ylabel="top-1 on B", title=f"{similarity} tasks")
        ax.grid(alpha=0.3)
    plots.legend_outside(axes[0][-1])
    fig.suptitle(f"Which strategy when ({plots.interval_note(counts)})", fontsize=10)
    plots.save_figure(fig, out)


def cut_figure(df: pd.DataFrame, out: Path) -> None:
    """Top-1 on B against parameters of the net cut after unit n."""
    c = df[df.study == "cut"]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for (source, part), color in zip(c.groupby("source"), ("#1f3fbf", "#2a9d4b")):
        g = part.groupby("n").agg(parameters=("parameters", "first"), top1=("top1", "mean")).reset_index()
        ax.plot(g.parameters, g.top1, marker="o", color=color, label="baseA" if source == "A" else "pretrained")
        ax.scatter(part.parameters, part.top1, s=12, alpha=0.4, color=color)
        for _, row in g.iterrows():
            ax.annotate(
                f"n={int(row.n)}", (row.parameters, row.top1), textcoords="offset points", xytext=(4, 4), fontsize=8
            )
    plots.legend_outside(ax)
    ax.set_xscale("log")
    ax.set(
        xlabel="parameters of the cut net",
        ylabel="top-1 on B (mean over runs; a point per run)",
        title="Cutting a net after unit n",
    )
    ax.grid(alpha=0.3)
    plots.save_figure(fig, out)
