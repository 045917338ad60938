"""The grid's report: a row per base net and treatment; headline numbers; Figures 2 and 3 of the paper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from transferlab import plots
from transferlab.plots import plt
from transferlab.runs import Layout, RunSpec
from transferlab.stats import DIFFERENCE, ROW_KEYS, interval, reported_top1, split_kind, statistic_of, statistic_text
from transferlab.study_report import StudyReport, read_runs, series_means


def build(params, layout: Layout, runs: list[RunSpec]) -> StudyReport:
    """The grid's report: its planned runs only (base nets, treatments, random control, PnB)."""
    metrics = read_runs(runs, layout)
    df = tidy_table(runs, metrics)
    if df.empty:  # base_nets: [] (the analysis of a pretrained net alone)
        why_not = "not run: base_nets is [] in params.yaml (no base nets, no treatments)"
        figures = {"transfer.png": why_not, "transfer_relative.png": why_not}
        return StudyReport(df, {"runs": 0}, figures, plot_data=plot_data(df, runs, metrics))
    on_halves = halves(df)
    figures = {
        "transfer.png": (lambda out: transfer_figure(on_halves, out))
        if len(on_halves)
        else "not run: base_nets is [] in params.yaml (the random control on every class: transfer_relative.png)",
        "transfer_relative.png": lambda out: relative_figure(df, out),
    }
    return StudyReport(df, headline(df), figures, plot_data=plot_data(df, runs, metrics))


ALL_CLASSES = ("base_all", "random_all")  # the random control on every class and its base (AllClassesControl)


def halves(df: pd.DataFrame) -> pd.DataFrame:
    """The runs on a split's halves: the grid without the random control on every class."""
    return df[~df.treatment.isin(ALL_CLASSES)]


def every_class(df: pd.DataFrame) -> pd.DataFrame:
    """The random control on every class and its base: the rest of the grid."""
    return df[df.treatment.isin(ALL_CLASSES)]


def tidy_table(specs: list[RunSpec], metrics: list[dict]) -> pd.DataFrame:
    """One row per run: its id, design factors, metrics and key parameters (no runs: no rows,
    the same columns)."""
    return pd.DataFrame([_row(spec, m) for spec, m in zip(specs, metrics)], columns=list(_row(RunSpec("0", "A"), {})))


def _row(spec: RunSpec, m: dict) -> dict:
    params = m.get("params", {})
    phase = m.get("train", {})  # the run's effective training settings
    return {
        "run_id": str(spec),
        "study": "transfer",
        "split": spec.split,
        "split_kind": split_kind(spec.split),
        "replicate": spec.replicate,
        "treatment": spec.treatment,
        "source": spec.source or "",
        "target": spec.target,
        "direction": f"{spec.source}->{spec.target}" if spec.source in ("A", "B") else "",
        "n": spec.n,
        "finetune": spec.finetune,
        "top1": reported_top1(m) if m else None,  # chosen on validation where the run validated
        "statistic": statistic_of(m),
        **{k: m.get(k) for k in ROW_KEYS},
        "model": params.get("model", {}).get("name"),
        "model_width": params.get("model", {}).get("width"),
        "epochs": phase.get("epochs"),
        "lr": phase.get("lr"),
    }


def with_base(df: pd.DataFrame) -> pd.DataFrame:
    """Add `base_top1` (the base net of the same split, target half and replicate; for the random
    control on every class, the net on every class with no random units) and `delta`."""
    base = df[df.treatment.isin(("base", "base_all"))][["split", "target", "replicate", "top1"]].rename(
        columns={"top1": "base_top1"}
    )
    out = df.merge(base, on=["split", "target", "replicate"], how="left")
    out["delta"] = out["top1"] - out["base_top1"]
    return out


def headline(df: pd.DataFrame) -> dict:
    """Headline numbers of the random splits, with 95% intervals over split x replicate pairs;
    the same for each named split kind (mn, nm, classes, cross, all: paired over its
    replicates), and the AnB drop at the top layer per split kind."""
    out: dict = {"runs": int(len(df))}
    control = with_base(every_class(df))
    if len(control):
        out["random_all_classes"] = _control_summary(control)
    d = with_base(halves(df))
    rnd = d[d.split_kind == "random"]
    if len(rnd):
        out.update(_effects(rnd))
    named = d[d.split_kind != "random"]
    if len(named):  # e.g. split all: what ImageNet initialisation adds (the MobileNet study's headline)
        out["effects_by_kind"] = {kind: _effects(g) for kind, g in named.groupby("split_kind")}
    anb = d[d.treatment == "AnB"]
    out["anb_drop_top_by_kind"] = {
        kind: float(-g[g.n == g.n.max()].delta.mean()) for kind, g in anb.groupby("split_kind")
    }
    gaps = anb_minus_random(df)
    if len(gaps):
        out["anb_minus_random_by_kind"] = {kind: _gap_summary(g) for kind, g in gaps.groupby("split_kind")}
    return out


def anb_minus_random(df: pd.DataFrame) -> pd.DataFrame:
    """The paper's last finding: AnB minus the random-weights control with the same split,
    target, replicate and n (paired), one row each; positive where the transferred features,
    even from a dissimilar half, beat random ones."""
    keys = ["split_kind", "split", "target", "replicate", "n"]
    anb = df[df.treatment == "AnB"][[*keys, "top1"]]
    rnd = df[df.treatment == "random"][[*keys, "top1"]]
    both = anb.merge(rnd, on=keys, suffixes=("_anb", "_random"))
    return both.assign(gap=both["top1_anb"] - both["top1_random"])[[*keys, "gap"]]


def _control_summary(d: pd.DataFrame) -> dict:
    """The random control on every class, as the paper read it: its base's top-1, the mean drop
    from that base per n (n1, n2, ...), and at the top n with its interval over replicates."""
    drops = d[d.treatment == "random_all"]
    out = interval(d[d.treatment == "base_all"].top1).fields("base_top1")
    out |= {f"drop_n{n}": float(-v) for n, v in drops.groupby("n").delta.mean().items()}
    if len(drops):
        out |= interval(-drops[drops.n == drops.n.max()].delta, DIFFERENCE).fields("drop_top")
    return out


def _gap_summary(g: pd.DataFrame) -> dict:
    """Mean gap per n (n1, n2, ...), its smallest mean over n, and an interval at the top n."""
    by_n = g.groupby("n").gap.mean()
    top = g[g.n == g.n.max()].gap
    return {
        **{f"n{n}": float(v) for n, v in by_n.items()},
        "min_over_n": float(by_n.min()),
        **interval(top, DIFFERENCE).fields("top"),
    }


def _per_pair(d: pd.DataFrame, treatment: str, reduce) -> pd.Series:
    """One value per (split, target, replicate): `reduce` of that treatment's deltas by n."""
    rows = d[d.treatment == treatment]
    return pd.Series(
        [reduce(g.set_index("n").delta.sort_index()) for _, g in rows.groupby(["split", "target", "replicate"])],
        dtype=float,
    )


def _effects(d: pd.DataFrame) -> dict:
    """Base top-1; mean AnB+ gain; AnB and random-control drops at the top layer; deepest BnB
    dip; the pretrained net's PnB+ gain at the top n (every unit copied and fine-tuned: what
    its initialisation adds over training from scratch). Each difference is paired with the
    base net of its own split, half and replicate."""
    out = interval(d[d.treatment == "base"]["top1"]).fields("base_top1")
    treatments = set(d.treatment)
    if "AnB+" in treatments:
        out |= interval(_per_pair(d, "AnB+", lambda s: s.mean()), DIFFERENCE).fields("anb_plus_gain")
    if "AnB" in treatments:
        out |= interval(_per_pair(d, "AnB", lambda s: -s.iloc[-1]), DIFFERENCE).fields("anb_drop_top")
    if "random" in treatments:
        out |= interval(_per_pair(d, "random", lambda s: -s.iloc[-1]), DIFFERENCE).fields("random_drop_top")
    if "PnB+" in treatments:
        out |= interval(_per_pair(d, "PnB+", lambda s: s.iloc[-1]), DIFFERENCE).fields("pnb_plus_gain_top")
    if "BnB" in treatments:
        by_n = d[d.treatment == "BnB"].groupby("n").delta.mean()
        out |= {"bnb_dip": float(-by_n.min()), "bnb_dip_layer": int(by_n.idxmin())}
    return out


# --- plot data (dvc plots) and figures -------------------------------------------------------


def plot_data(df: pd.DataFrame, runs: list[RunSpec], metrics: list[dict]) -> dict[str, pd.DataFrame]:
    """Figure 2 (mean top-1 by n; the target halves' base nets as a flat line from n = 0),
    Figure 3 (mean paired difference from the base net by n), a series per treatment and
    split kind; and the base nets' test curves by training step (their DVCLive log)."""
    d = with_base(halves(df))
    control = with_base(every_class(df))
    treated = d[d.treatment != "base"]
    base = target_bases(d)
    ns = [0, *sorted(treated.n.unique())]
    flat = pd.concat([base.assign(n=n) for n in ns], ignore_index=True) if len(base) else base

    def label(rows: pd.DataFrame, name) -> pd.Series:
        return name + ", " + rows.split_kind.map(plots.KIND_LABELS)

    transfer = pd.concat(
        [
            series_means(flat, "n", "top1", label(flat, "base" + "".join(sorted(set(base.target)))), "top1"),
            series_means(treated, "n", "top1", label(treated, treated.treatment.astype(str)), "top1"),
        ],
        ignore_index=True,
    )
    relative = series_means(treated, "n", "delta", label(treated, treated.treatment.astype(str)), "top1_minus_base")
    drops = control[control.treatment == "random_all"]
    if len(drops):  # (an empty frame in the concat would make the column objects, unformatted in the csv)
        label = pd.Series(CONTROL_ALL_LABEL, index=drops.index)
        relative = pd.concat([relative, series_means(drops, "n", "delta", label, "top1_minus_base")], ignore_index=True)
    curves = pd.DataFrame(
        [
            {"step": record["step"], "series": str(r), "test_top1": record["test_top1"]}
            for r, m in zip(runs, metrics)
            if r.is_base
            for record in m.get("history", [])
        ],
        columns=["step", "series", "test_top1"],
    )
    return {"transfer.csv": transfer, "transfer_relative.csv": relative, "base_curves.csv": curves}


def transfer_figure(df: pd.DataFrame, out: Path) -> None:
    """Figure 2 of the paper: top-1 on the target half against n, a point per run, mean lines;
    one panel per split kind (random splits, and each dissimilar kind that ran)."""
    kinds = plots.kinds_in(df)
    fig, axes = plt.subplots(1, len(kinds), figsize=(7.5 * len(kinds) + 2, 5), squeeze=False, sharey=True)
    for ax, kind in zip(axes[0], kinds):
        _transfer_panel(ax, df[df.split_kind == kind], kind)
    axes[0][0].set_ylabel(f"Top-1 on the target half\n({statistic_text(df.statistic)})")
    plots.legend_outside(axes[0][-1])
    fig.suptitle(f"Transfer by layer ({plots.ABSOLUTE_NOTE}; Figure 3: the paired differences)", fontsize=10)
    plots.save_figure(fig, out)


def target_bases(d: pd.DataFrame) -> pd.DataFrame:
    """The base nets of the halves the treatments target (transfer.targets): with B alone, baseA
    (often an easier or harder half) would shift the line the treatments are read against."""
    targets = set(d[d.treatment != "base"].target) or set(d.target)
    return d[(d.treatment == "base") & d.target.isin(targets)]


def _transfer_panel(ax, d: pd.DataFrame, kind: str) -> None:
    rng = np.random.default_rng(0)
    base = target_bases(d)
    targets = set(base.target)
    half = next(iter(targets)) if len(targets) == 1 else ""  # "baseB (mean)" with targets [B]
    ax.axhline(base["top1"].mean(), color="black", linestyle="--", linewidth=0.8, label=f"base{half} (mean)")
    plots.scatter_runs(ax, base.assign(n=0), "top1", "base", 0.0, rng)
    offsets = {"BnB": -0.15, "BnB+": -0.05, "AnB": 0.05, "AnB+": 0.15, "PnB": 0.25, "PnB+": 0.3}
    for treatment, offset in offsets.items():
        t = d[d.treatment == treatment]
        if len(t):
            plots.scatter_runs(ax, t, "top1", treatment, offset, rng)
            plots.mean_line(ax, t, "n", "top1", None, plots.STYLE[treatment]["color"], linewidth=1.5)
    ax.set_xlabel(plots.X_LABEL)
    ax.set_xticks(sorted(d.n.unique()))
    ax.set_title(
        f"{plots.KIND_LABELS[kind]}: {d.split.nunique()} split(s), {d.replicate.nunique()} replicate(s)", fontsize=10
    )
    ax.grid(alpha=0.3)


# The paper's curves: name -> (experiment, treatment, target halves) in its per-network results.
# Its man-made/natural experiment ran both ways: natural -> man-made is our "nm", the other "mn".
PAPER_CURVES = {
    "AnB, random splits (similar)": ("random_halves", "AnB", ("half",)),
    "AnB, man-made -> natural": ("manmade_natural", "AnB", ("natural",)),
    "AnB, natural -> man-made": ("manmade_natural", "AnB", ("manmade",)),
    "random, frozen layers (control)": ("full_1000", "random_frozen", ("all",)),
}
CONTROL_ALL_LABEL = "random weights, frozen, on every class (the paper's control)"
PAPER_SERIES = {
    "random": "AnB, random splits (similar)",
    "mn": "AnB, man-made -> natural",
    "nm": "AnB, natural -> man-made",
}


def paper_deltas() -> pd.DataFrame:
    """The paper's own Figure 3 (ImageNet, CaffeNet), from the shipped per-network results: per
    series and n, the mean top-1 minus the mean of the base nets it is compared with (random
    halves: their eight base nets; man-made/natural: each half's own base; random weights: the
    1000-class base)."""
    from importlib import resources

    with resources.files("transferlab").joinpath("resources", "yosinski2014_imagenet_top1.csv").open() as f:
        ref = pd.read_csv(f)
    base = ref[ref.treatment == "base"].groupby(["experiment", "target"]).top1.mean()
    ref = ref[ref.treatment != "base"].assign(
        delta=lambda r: r.top1 - base.loc[list(zip(r.experiment, r.target))].to_numpy()
    )
    parts = [
        ref[(ref.experiment == e) & (ref.treatment == t) & ref.target.isin(targets)]
        .groupby("n")
        .delta.mean()
        .reset_index()
        .assign(series=name)
        for name, (e, t, targets) in PAPER_CURVES.items()
    ]
    return pd.concat(parts, ignore_index=True)


def relative_series(d: pd.DataFrame) -> list[tuple[pd.DataFrame, str, str, str | None]]:
    """Figure 3's curves (rows with their delta, label, colour, the paper's curve drawn beside
    it): AnB per split kind, the random controls, PnB and PnB+ where a pretrained source ran."""
    series = [
        (
            d[(d.treatment == "AnB") & (d.split_kind == kind)],
            f"AnB, {plots.KIND_LABELS[kind]}",
            plots.KIND_COLORS[kind],
            PAPER_SERIES.get(kind),
        )
        for kind in plots.kinds_in(d)
    ]
    # The paper's control ran on every class: its curve beside that experiment alone.
    series.append((d[d.treatment == "random"], "random weights, frozen (control on B)", "#555555", None))
    series.append((d[d.treatment == "random_all"], CONTROL_ALL_LABEL, "#000000", "random, frozen layers (control)"))
    # A pretrained source (the MobileNet study's "AnB": n units of the ImageNet net), where it ran.
    series += [(d[d.treatment == t], f"{t}, pretrained net", plots.STYLE[t]["color"], None) for t in ("PnB", "PnB+")]
    return series


def relative_figure(df: pd.DataFrame, out: Path) -> None:
    """Figure 3 of the paper: AnB relative to the base net, per split kind (random splits and each
    dissimilar kind that ran), the random-weights control, and PnB / PnB+ where a pretrained
    source ran; the paper's own ImageNet curve dotted beside each series it has one for."""
    d = with_base(df)
    fig, ax = plt.subplots(figsize=(10, 5))
    paper = paper_deltas()
    series = relative_series(d)
    counts = []
    for part, label, color, paper_name in series:
        if part.empty:
            continue
        ax.scatter(part.n, part.delta, s=14, color=color, alpha=0.5)
        counts += [
            i.count
            for i in plots.mean_band(ax, part, "n", "delta", label, color, DIFFERENCE, linewidth=1.8, marker="o")
        ]
        ref = paper[paper.series == paper_name]
        if len(ref):
            ax.plot(
                ref.n, ref.delta, color=color, linestyle=":", linewidth=1.2, label=f"the paper (ImageNet): {paper_name}"
            )
    gaps = anb_minus_random(df)
    dissimilar = gaps[gaps.split_kind != "random"]
    for kind, g in dissimilar.groupby("split_kind"):
        counts += [
            i.count
            for i in plots.mean_band(
                ax,
                g,
                "n",
                "gap",
                f"AnB minus random control, {plots.KIND_LABELS[kind]}",
                plots.KIND_COLORS[kind],
                DIFFERENCE,
                linewidth=1.2,
                linestyle="-.",
                marker="s",
                markersize=4,
            )
        ]
    ax.axhline(0, color="black", linestyle="--", linewidth=0.8)
    ax.set_xlabel(plots.X_LABEL)
    ax.set_ylabel(
        "Top-1 minus the base net's top-1" + ("\n(dash-dot: AnB minus the random control)" if len(dissimilar) else "")
    )
    ax.set_xticks(sorted(d[~d.treatment.isin(("base", "base_all"))].n.unique()))
    ax.set_title(f"Transfer relative to the base net ({plots.interval_note(counts)})", fontsize=10)
    plots.legend_outside(ax)
    ax.grid(alpha=0.3)
    plots.save_figure(fig, out)
