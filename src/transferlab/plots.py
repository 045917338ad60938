"""Tidy table -> figures in the style of Yosinski et al. 2014 (imports no torch)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from transferlab.aggregate import STATISTIC, with_base  # noqa: E402
from transferlab.stats import ACCURACY, DIFFERENCE, MIN_VALUES, Interval, interval  # noqa: E402

# The paper's Figure 2 colours and markers.
STYLE = {
    "base": dict(color="white", edgecolor="black", marker="o"),
    "BnB": dict(color="#1f3fbf", marker="o"),
    "BnB+": dict(color="#7fa6ff", marker="P"),
    "AnB": dict(color="#c81e1e", marker="D"),
    "AnB+": dict(color="#ff9999", marker="P"),
    "random": dict(color="#555555", marker="s"),
    "PnB": dict(color="#2a9d4b", marker="^"),
    "PnB+": dict(color="#8fd19e", marker="v"),
}
X_LABEL = "Layer n at which the network is chopped and retrained"


KIND_COLORS = {"random": "#c81e1e", "mn": "#e69f00", "nm": "#8c564b", "classes": "#9467bd", "cross": "#17becf", "all": "#2a9d4b"}
KIND_LABELS = {"random": "random splits (similar)", "mn": "man-made A, natural B (dissimilar)", "nm": "natural A, man-made B (dissimilar)",
               "classes": "hand-made class split (split.classes_a/b)", "cross": "A and B from different data sets", "all": "A = B = all classes"}  # fmt: skip


def kinds_in(df: pd.DataFrame) -> list[str]:
    """The split kinds present, random first, then in KIND_LABELS' order."""
    return [k for k in KIND_LABELS if (df.split_kind == k).any()]


def mean_band(ax, rows: pd.DataFrame, x: str, y: str, label: str | None, color, bounds=ACCURACY, **style) -> list[Interval]:
    """The mean of `y` per `x` as a line, and its 95% interval as a band at the x values that
    have at least 3 runs (stats.interval); the one place figures draw means and intervals."""
    xs = sorted(rows[x].unique())
    intervals = [interval(rows.loc[rows[x] == v, y], bounds) for v in xs]
    ax.plot(xs, [i.mean for i in intervals], label=label, color=color, **style)
    low = np.array([np.nan if i.low is None else i.low for i in intervals])
    high = np.array([np.nan if i.high is None else i.high for i in intervals])
    if np.isfinite(low).any():
        ax.fill_between(xs, low, high, color=color, alpha=0.15, linewidth=0)
    return intervals


def interval_note(counts: list[int]) -> str:
    """What the bands of a figure are, or why there are none."""
    if not counts or max(counts) < MIN_VALUES:
        return f"no intervals: fewer than {MIN_VALUES} runs per point"
    return f"bands: 95% t-intervals where a point has >= {MIN_VALUES} runs"


def legend_outside(ax, **kwargs) -> None:
    """A legend to the right of the axes, where it hides no data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0, **kwargs)


def _scatter(ax, df: pd.DataFrame, column: str, treatment: str, offset: float, rng: np.random.Generator) -> None:
    """One point per run, jittered around its layer so that overlapping runs stay visible."""
    s = STYLE[treatment]
    x = df.n.to_numpy(dtype=float) + offset + rng.uniform(-0.06, 0.06, len(df))
    ax.scatter(x, df[column], s=28, c=s["color"], marker=s["marker"], edgecolors=s.get("edgecolor", "none"), linewidths=0.8, label=treatment, zorder=3)


def transfer_figure(df: pd.DataFrame, out: Path) -> None:
    """Figure 2 of the paper: top-1 on the target half against n, a point per run, mean lines;
    one panel per split kind (random splits, and each dissimilar kind that ran)."""
    kinds = kinds_in(df)
    fig, axes = plt.subplots(1, len(kinds), figsize=(7.5 * len(kinds) + 2, 5), squeeze=False, sharey=True)
    counts = []
    for ax, kind in zip(axes[0], kinds):
        counts += _transfer_panel(ax, df[df.split_kind == kind], kind)
    axes[0][0].set_ylabel("Top-1 on the target half (mean of k best evaluations)")
    legend_outside(axes[0][-1])
    fig.suptitle(f"Transfer by layer ({interval_note(counts)})", fontsize=10)
    save_figure(fig, out)


def _transfer_panel(ax, d: pd.DataFrame, kind: str) -> list[int]:
    rng = np.random.default_rng(0)
    base = d[d.treatment == "base"]
    ax.axhline(base[STATISTIC].mean(), color="black", linestyle="--", linewidth=0.8, label="base (mean)")
    _scatter(ax, base.assign(n=0), STATISTIC, "base", 0.0, rng)
    offsets = {"BnB": -0.15, "BnB+": -0.05, "AnB": 0.05, "AnB+": 0.15, "PnB": 0.25, "PnB+": 0.3}
    counts = []
    for treatment, offset in offsets.items():
        t = d[d.treatment == treatment]
        if len(t):
            _scatter(ax, t, STATISTIC, treatment, offset, rng)
            counts += [i.count for i in mean_band(ax, t, "n", STATISTIC, None, STYLE[treatment]["color"], linewidth=1.5)]
    ax.set_xlabel(X_LABEL)
    ax.set_xticks(sorted(d.n.unique()))
    ax.set_title(f"{KIND_LABELS[kind]}: {d.split.nunique()} split(s), {d.replicate.nunique()} replicate(s)", fontsize=10)
    ax.grid(alpha=0.3)
    return counts


# The paper's curves: name -> (experiment, treatment, target halves) in its per-network results.
# Its man-made/natural experiment ran both ways: natural -> man-made is our "nm", the other "mn".
PAPER_CURVES = {
    "AnB, random splits (similar)": ("random_halves", "AnB", ("half",)),
    "AnB, man-made -> natural": ("manmade_natural", "AnB", ("natural",)),
    "AnB, natural -> man-made": ("manmade_natural", "AnB", ("manmade",)),
    "random, frozen layers (control)": ("full_1000", "random_frozen", ("all",)),
}
PAPER_SERIES = {"random": "AnB, random splits (similar)", "mn": "AnB, man-made -> natural", "nm": "AnB, natural -> man-made"}


def paper_deltas() -> pd.DataFrame:
    """The paper's own Figure 3 (ImageNet, CaffeNet), from the shipped per-network results: per
    series and n, the mean top-1 minus the mean of the base nets it is compared with (random
    halves: their eight base nets; man-made/natural: each half's own base; random weights: the
    1000-class base)."""
    from importlib import resources

    with resources.files("transferlab").joinpath("resources", "yosinski2014_imagenet_top1.csv").open() as f:
        ref = pd.read_csv(f)
    base = ref[ref.treatment == "base"].groupby(["experiment", "target"]).top1.mean()
    ref = ref[ref.treatment != "base"].assign(delta=lambda r: r.top1 - base.loc[list(zip(r.experiment, r.target))].to_numpy())
    parts = [ref[(ref.experiment == e) & (ref.treatment == t) & ref.target.isin(targets)].groupby("n").delta.mean().reset_index().assign(series=name)
             for name, (e, t, targets) in PAPER_CURVES.items()]  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def relative_figure(df: pd.DataFrame, out: Path) -> None:
    """Figure 3 of the paper: AnB relative to the base net, per split kind (random splits and each
    dissimilar kind that ran), and the random-weights control; the paper's own ImageNet curve
    dotted beside each series it has one for."""
    d = with_base(df)
    fig, ax = plt.subplots(figsize=(10, 5))
    paper = paper_deltas()
    series = [(d[(d.treatment == "AnB") & (d.split_kind == kind)], f"AnB, {KIND_LABELS[kind]}", KIND_COLORS[kind], PAPER_SERIES.get(kind)) for kind in kinds_in(d)]
    series.append((d[d.treatment == "random"], "random weights, frozen (control)", "#555555", "random, frozen layers (control)"))
    counts = []
    for part, label, color, paper_name in series:
        if part.empty:
            continue
        ax.scatter(part.n, part.delta, s=14, color=color, alpha=0.5)
        counts += [i.count for i in mean_band(ax, part, "n", "delta", label, color, DIFFERENCE, linewidth=1.8, marker="o")]
        ref = paper[paper.series == paper_name]
        if len(ref):
            ax.plot(ref.n, ref.delta, color=color, linestyle=":", linewidth=1.2, label=f"the paper (ImageNet): {paper_name}")
    ax.axhline(0, color="black", linestyle="--", linewidth=0.8)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel("Top-1 minus the base net's top-1")
    ax.set_xticks(sorted(d[d.treatment != "base"].n.unique()))
    ax.set_title(f"Transfer relative to the base net ({interval_note(counts)})", fontsize=10)
    legend_outside(ax)
    ax.grid(alpha=0.3)
    save_figure(fig, out)


def save_figure(fig, out: Path) -> None:
    """Save a figure atomically (temp file, then rename)."""
    from transferlab.artifacts import atomic_write

    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=120, format="png", bbox_inches="tight"))  # nothing cut off
    plt.close(fig)
