"""Tidy table -> figures in the style of Yosinski et al. 2014 (imports no torch)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from transferlab.artifacts import atomic_write  # noqa: E402
from transferlab.stats import ACCURACY, MIN_VALUES, Interval, interval  # noqa: E402

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


KIND_COLORS = {
    "random": "#c81e1e",
    "mn": "#e69f00",
    "nm": "#8c564b",
    "classes": "#9467bd",
    "cross": "#17becf",
    "all": "#2a9d4b",
}
KIND_LABELS = {
    "random": "random splits (similar)",
    "mn": "man-made A, natural B (dissimilar)",
    "nm": "natural A, man-made B (dissimilar)",
    "classes": "hand-made class split (split.classes_a/b)",
    "cross": "A and B from different data sets",
    "all": "A = B = all classes",
}


def kinds_in(df: pd.DataFrame) -> list[str]:
    """The split kinds present, random first, then in KIND_LABELS' order."""
    return [k for k in KIND_LABELS if (df.split_kind == k).any()]


def mean_band(
    ax, rows: pd.DataFrame, x: str, y: str, label: str | None, color, bounds=ACCURACY, **style
) -> list[Interval]:
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


ABSOLUTE_NOTE = "a point per run, lines: means; intervals only on paired differences (splits differ in difficulty)"


def mean_line(ax, rows: pd.DataFrame, x: str, y: str, label: str | None, color, **style) -> None:
    """The mean of `y` per `x` as a line, without a band: for absolute levels (top-1, error),
    where runs of different splits are not paired and a t-interval over them would span the
    splits' differences in difficulty rather than the uncertainty of a mean. The points beside
    it show the spread; intervals belong to paired differences (mean_band)."""
    means = rows.groupby(x)[y].mean().sort_index()
    ax.plot(means.index, means.values, label=label, color=color, **style)


def not_run_figure(out: Path, why: str) -> None:
    """A figure that says why it has no data (a study part that did not run): the report stage
    declares every figure as an output, and an earlier run's must not pass for this one's."""
    fig, ax = plt.subplots(figsize=(6, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, f"{out.stem}: {why}", ha="center", va="center", fontsize=11)
    save_figure(fig, out)


def interval_note(counts: list[int]) -> str:
    """What the bands of a figure are, or why there are none."""
    if not counts or max(counts) < MIN_VALUES:
        return f"no intervals: fewer than {MIN_VALUES} runs per point"
    return f"bands: 95% t-intervals where a point has >= {MIN_VALUES} runs"


def legend_outside(ax, **kwargs) -> None:
    """A legend to the right of the axes, where it hides no data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0, **kwargs)


def scatter_runs(ax, df: pd.DataFrame, column: str, treatment: str, offset: float, rng: np.random.Generator) -> None:
    """One point per run, jittered around its layer so that overlapping runs stay visible."""
    s = STYLE[treatment]
    x = df.n.to_numpy(dtype=float) + offset + rng.uniform(-0.06, 0.06, len(df))
    ax.scatter(
        x,
        df[column],
        s=28,
        c=s["color"],
        marker=s["marker"],
        edgecolors=s.get("edgecolor", "none"),
        linewidths=0.8,
        label=treatment,
        zorder=3,
    )


def save_figure(fig, out: Path) -> None:
    """Save a figure atomically (temp file, then rename)."""
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=120, format="png", bbox_inches="tight"))  # nothing cut off
    plt.close(fig)
