"""Tidy table -> figures in the style of Yosinski et al. 2014 (imports no torch)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from transferlab.aggregate import STATISTIC, mean_interval, with_base  # noqa: E402

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


def _mean_line(ax, df: pd.DataFrame, column: str, label: str | None, **style) -> None:
    """Mean per n with a shaded 95% interval (when there are replicates)."""
    g = sorted(df.groupby("n")[column], key=lambda kv: kv[0])
    xs = np.array([n for n, _ in g])
    mi = np.array([mean_interval(v) for _, v in g])
    ax.plot(xs, mi[:, 0], label=label, **style)
    if (mi[:, 1] > 0).any():
        ax.fill_between(xs, mi[:, 0] - mi[:, 1], mi[:, 0] + mi[:, 1], color=style.get("color"), alpha=0.15, linewidth=0)


def _scatter(ax, df: pd.DataFrame, column: str, treatment: str, offset: float, rng: np.random.Generator) -> None:
    """One point per run, jittered around its layer so that overlapping runs stay visible."""
    s = STYLE[treatment]
    x = df.n.to_numpy(dtype=float) + offset + rng.uniform(-0.06, 0.06, len(df))
    ax.scatter(x, df[column], s=28, c=s["color"], marker=s["marker"], edgecolors=s.get("edgecolor", "none"), linewidths=0.8, label=treatment, zorder=3)


def transfer_figure(df: pd.DataFrame, out: Path) -> None:
    """Figure 2 of the paper: top-1 on the target half against n, a point per run, mean lines."""
    d = df[df.split_kind == "random"]
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(8, 5))
    base = d[d.treatment == "base"]
    ax.axhline(base[STATISTIC].mean(), color="black", linestyle="--", linewidth=0.8, label="base (mean)")
    _scatter(ax, base.assign(n=0), STATISTIC, "base", 0.0, rng)
    offsets = {"BnB": -0.15, "BnB+": -0.05, "AnB": 0.05, "AnB+": 0.15, "PnB": 0.25, "PnB+": 0.3}
    for treatment, offset in offsets.items():
        t = d[d.treatment == treatment]
        if len(t):
            _scatter(ax, t, STATISTIC, treatment, offset, rng)
            _mean_line(ax, t, STATISTIC, None, color=STYLE[treatment]["color"], linewidth=1.5)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel("Top-1 accuracy on the target half (mean of k best evaluations)")
    layers = sorted(d.n.unique())
    ax.set_xticks(layers)
    ax.legend(loc="lower left", fontsize=8, ncol=3)
    ax.set_title(f"Transfer by layer: {d.split.nunique()} random split(s), {d.replicate.nunique()} replicate(s)")
    ax.grid(alpha=0.3)
    save_figure(fig, out)


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
    series = {"AnB, random splits (similar)": ("random_halves", "AnB"), "AnB, man-made/natural split (dissimilar)": ("manmade_natural", "AnB"),
              "random, frozen layers (control)": ("full_1000", "random_frozen")}  # fmt: skip
    parts = [ref[(ref.experiment == e) & (ref.treatment == t)].groupby("n").delta.mean().reset_index().assign(series=name) for name, (e, t) in series.items()]
    return pd.concat(parts, ignore_index=True)


def relative_figure(df: pd.DataFrame, out: Path) -> None:
    """Figure 3 of the paper: drop relative to the base net, random vs dissimilar splits vs random
    layers; the paper's own ImageNet curves drawn thin and dashed beside them."""
    d = with_base(df)
    fig, ax = plt.subplots(figsize=(8, 5))
    paper = paper_deltas()
    series = [
        (d[(d.treatment == "AnB") & (d.split_kind == "random")], "AnB, random splits (similar)", "#c81e1e"),
        (d[(d.treatment == "AnB") & (d.split_kind == "manmade_natural")], "AnB, man-made/natural split (dissimilar)", "#e69f00"),
        (d[d.treatment == "random"], "random, frozen layers (control)", "#555555"),
    ]
    for part, label, color in series:
        if len(part):
            ax.scatter(part.n, part.delta, s=14, color=color, alpha=0.5)
            _mean_line(ax, part, "delta", label, color=color, linewidth=1.8, marker="o")
            ref = paper[paper.series == label]
            ax.plot(ref.n, ref.delta, color=color, linestyle=":", linewidth=1.2, label=f"the paper (ImageNet): {label}")
    ax.axhline(0, color="black", linestyle="--", linewidth=0.8)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel("Top-1 minus the base net's top-1")
    ax.set_xticks(sorted(d[d.treatment != "base"].n.unique()))
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, out)


def save_figure(fig, out: Path) -> None:
    """Save a figure atomically (temp file, then rename)."""
    from transferlab.artifacts import atomic_write

    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
