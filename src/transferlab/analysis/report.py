"""The analysis' rows (method, source, n, m, value), the estimators' agreement, and its figures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from transferlab import plots
from transferlab.accuracy import MEAN_CLASS
from transferlab.analysis.cka import ESTIMATOR
from transferlab.errors import MissingRunError
from transferlab.models import model_units
from transferlab.plots import plt
from transferlab.runs import Layout
from transferlab.stats import DIFFERENCE, interval, spearman, split_kind
from transferlab.study_report import StudyReport, series_means

ANALYSIS_METHODS = ("probe_logreg", "probe_svm", "logme", "leep", "hscore")


def build(params, layout: Layout, runs: list) -> StudyReport:
    """The analysis' report: its per-unit values, read beside the grid's and the strategies'
    tables (their report stages' outputs: the measured top-1 the estimates are held against).
    It has no runs of its own (`runs` is empty): its files are one per split and replicate."""
    df, draws = analysis_table(params, layout.analysis), draw_table(params, layout.analysis)
    grid, strategies = (pd.read_parquet(layout.report_dir(s) / "results.parquet") for s in ("grid", "strategies"))
    figures = {
        "probe.png": lambda out: probe_figure(df, grid, out),
        "cka.png": lambda out: cka_figure(df, out),
        "estimates.png": lambda out: estimates_figure(df, grid, out),
    }
    headline = {**analysis_headline(df, grid), **classifier_agreement(df, strategies)}
    texts = {"decaf.md": decaf_table(df, draws, params)}
    return StudyReport(df, headline, figures, texts, plot_data={"probe.csv": probe_plot_data(df)})


DECAF_ROWS = {  # DeCAF's Table 1, its rows: classifier, and with dropout on the features
    "probe_logreg": "LogReg",
    "probe_logreg_dropout": "LogReg with dropout",
    "probe_svm": "SVM",
    "probe_svm_dropout": "SVM with dropout",
}


def decaf_table(analysis: pd.DataFrame, draws: pd.DataFrame, params) -> str:
    """DeCAF's Table 1 form: per source net and split kind, a row per classifier (with and
    without dropout on the features), a column per unit of analysis.decaf_units; top-1 on B (the
    mean per-class accuracy where B's test classes are unbalanced, as DeCAF reported Caltech-101),
    mean and 95% t-interval over its values: one per split, replicate and data draw of B's
    training images (`draws`: those beyond the first), and one per split and draw for the
    pretrained net (the same net and images in every replicate: not independent values)."""
    title = "# Off-the-shelf features in the DeCAF form\n\n"
    cfg = params.analysis
    if not cfg.decaf_units:
        return title + "Not run: analysis.decaf_units is [] in params.yaml.\n"
    names = model_units(params.model.name, **params.model.options())
    per_class = analysis.method.str.endswith(MEAN_CLASS).any()  # B's test classes unbalanced (accuracy.py)
    measure = (
        "Mean per-class accuracy on B (B's test classes hold different numbers of images: Caltech-101's convention)"
        if per_class
        else "Top-1 on B"
    )
    lines = [
        title + f"{measure} of a linear classifier on one unit's features (conv maps averaged over space, "
        f"L2-normalised), as in DeCAF's Table 1 (Donahue et al. 2014): logistic regression and linear SVM (C = "
        f"{cfg.probe_c:g}), each also fitted with dropout on the features ({cfg.dropout_copies} copies of the "
        "training features, each with a fresh half of its components zeroed). Mean [95% t-interval] over the "
        f"values of splits x replicates x data draws ({_draws_text(cfg)}; the pretrained net: one per split and "
        "draw); no interval from fewer than 3.\n"
    ]
    methods = {f"{m}_{MEAN_CLASS}" if per_class else m: m for m in DECAF_ROWS}
    rows = pd.concat([analysis.assign(draw=cfg.data_draws[0]), *([draws] if len(draws) else [])])
    rows = rows[rows.method.isin(list(methods)) & rows.n.isin(cfg.decaf_units)]
    rows = rows.assign(method=rows.method.map(methods))
    units = sorted(cfg.decaf_units)
    for (source, kind), part in rows.groupby(["source", "split_kind"], sort=False):
        by = ["split", "draw"] if source == "P" else ["split", "replicate", "draw"]
        values = part.groupby(["method", "n", *by]).value.mean()
        lines += [
            f"## {_source_name(source)}: {plots.KIND_LABELS[kind]}\n",
            "| classifier | " + " | ".join(f"{names[n - 1]} (n = {n})" for n in units) + " |",
            "| --- |" + " --- |" * len(units),
        ]
        for method, label in DECAF_ROWS.items():
            cells = [interval(values.loc[(method, n)]).text() if (method, n) in values.index else "-" for n in units]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _draws_text(cfg) -> str:
    n = len(cfg.data_draws)
    if n == 1:
        return "one draw of B's training images; more in analysis.data_draws give the interval over draws"
    return f"{n} draws of {cfg.max_train_per_class} training images of each of B's classes, analysis.data_draws"


def probe_plot_data(analysis: pd.DataFrame) -> pd.DataFrame:
    """Mean probe top-1 on B by unit n, a series per probe, source net and split kind."""
    probes = analysis[analysis.method.isin(("probe_logreg", "probe_svm"))]
    label = probes.method.str.removeprefix("probe_") + " probe on " + probes.source.map(_source_name)
    return series_means(probes, "n", "value", label + ", " + probes.split_kind.map(plots.KIND_LABELS), "top1")


def _source_name(source: str) -> str:
    return {"A": "baseA", "B": "baseB", "P": "the pretrained net"}.get(source, source)


def _analysis_files(params, path_of) -> list[tuple[str, int, dict]]:
    """(split, replicate, the analyze stage's JSON) for every split and replicate params.yaml
    asks for; one line naming the missing files, if any are."""
    missing = [
        str(path_of(str(s), r))
        for s in params.splits
        for r in params.replicates
        if not Path(path_of(str(s), r)).is_file()
    ]
    if missing:
        raise MissingRunError(
            f"{len(missing)} analysis file(s) asked for by params.yaml are missing: {', '.join(missing[:3])}"
        )
    return [
        (str(split), rep, json.loads(Path(path_of(str(split), rep)).read_text()))
        for split in params.splits
        for rep in params.replicates
    ]


def _rows(params, path_of, key: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"study": "analysis", "split": split, "split_kind": split_kind(split), "replicate": rep, **r}
            for split, rep, data in _analysis_files(params, path_of)
            for r in data[key]
        ]
    )


def analysis_table(params, path_of) -> pd.DataFrame:
    """Rows (method, source, n, m, value) of every analysis params.yaml asks for."""
    return _rows(params, path_of, "rows")


def draw_table(params, path_of) -> pd.DataFrame:
    """Rows (method, source, n, draw, value) of the DeCAF units' probes on the data draws beyond
    the first (analysis.data_draws), of every split and replicate."""
    columns = ["study", "split", "split_kind", "replicate", "method", "source", "n", "draw", "value"]
    return _rows(params, path_of, "draw_rows").reindex(columns=columns)


def analysis_headline(analysis: pd.DataFrame, grid: pd.DataFrame) -> dict:
    """The pretrained net's best unit (where it was analysed); per method, the Spearman rank
    correlation across baseA's units between its value and (a) the AnB top-1 the grid measured
    (AnB retrains the layers above n), and (b) the logistic probe's top-1 at the same unit (what
    a linear read-out of unit n achieves, which is what the estimators claim to predict); one
    per split and replicate, mean and 95% interval."""
    out: dict = pretrained_best_unit(analysis)
    anb = grid[grid.treatment == "AnB"].groupby(["split", "replicate", "n"]).top1.mean()  # (the grid's reported top-1)
    probe = (
        analysis[(analysis.method == "probe_logreg") & (analysis.source == "A")]
        .groupby(["split", "replicate", "n"])
        .value.mean()
    )
    for method in ANALYSIS_METHODS:
        rows = analysis[(analysis.method == method) & (analysis.source == "A")]
        for target, measured in (("anb", anb), ("probe", probe)):
            if method == "probe_logreg" and target == "probe":
                continue  # itself
            rhos = _spearman_by_pair(rows, measured)
            if rhos:
                key = f"spearman_{method}" if target == "anb" else f"spearman_{method}_vs_probe"
                out |= interval(rhos, DIFFERENCE).fields(key)
    return out


def pretrained_best_unit(analysis: pd.DataFrame) -> dict:
    """The pretrained net's unit whose logistic probe is best on B (mean over splits and
    replicates), and that top-1: which layer's features to take."""
    probe = analysis[(analysis.method == "probe_logreg") & (analysis.source == "P")]
    if probe.empty:
        return {}
    means = probe.groupby("n").value.mean()
    return {"pretrained_best_unit": int(means.idxmax()), "pretrained_best_probe_top1": float(means.max())}


def _spearman_by_pair(rows: pd.DataFrame, measured: pd.Series) -> list[float]:
    """Spearman's rho across units, per (split, replicate), where both sides vary."""
    rhos = []
    for (split, rep), g in rows.groupby(["split", "replicate"]):
        if (split, rep) not in measured.index.droplevel("n"):
            continue
        both = g.groupby("n").value.mean().to_frame().join(measured.loc[(split, rep)].rename("measured"), how="inner")
        if len(both) >= 3 and both.value.nunique() > 1 and both.measured.nunique() > 1:  # else undefined or meaningless
            rhos.append(spearman(both.value, both.measured))
    return rhos


def classifier_agreement(analysis: pd.DataFrame, strategies: pd.DataFrame) -> dict:
    """The `classifier` strategy (a new classifier on baseA's frozen top unit, trained on B)
    against each method's value at baseA's top unit: Spearman across split x replicate pairs
    (with all of B's images), from at least 3 pairs."""
    if strategies.empty or "strategy" not in strategies:
        return {}
    clf = (
        strategies[(strategies.strategy == "classifier") & (strategies.images_per_class == "all")]
        .set_index(["split", "replicate"])
        .top1
    )
    out = {}
    for method in ANALYSIS_METHODS:
        rows = analysis[(analysis.method == method) & (analysis.source == "A")]
        top = rows[rows.n == rows.n.max()].groupby(["split", "replicate"]).value.mean()
        both = top.to_frame().join(clf, how="inner")
        if len(both) >= 3 and both.value.nunique() > 1 and both.top1.nunique() > 1:
            out[f"spearman_{method}_vs_classifier"] = spearman(both.value, both.top1)
    return out


# --- figures ---------------------------------------------------------------------------------


def _grid_lines(ax, grid: pd.DataFrame, treatments=("AnB", "AnB+")) -> None:
    """Mean top-1 of trained treatments per n (from the grid), dashed."""
    for t in treatments:
        rows = grid[grid.treatment == t]
        if len(rows):
            means = rows.groupby("n").top1.mean()
            ax.plot(
                means.index,
                means.values,
                linestyle="--",
                marker=plots.STYLE[t]["marker"],
                color=plots.STYLE[t]["color"],
                label=f"{t} (trained)",
            )


def probe_figure(analysis: pd.DataFrame, grid: pd.DataFrame, out: Path) -> None:
    """Probe top-1 on B from each unit of baseA (and baseB), beside AnB and AnB+; a panel per split kind."""
    kinds = plots.kinds_in(analysis)
    fig, axes = plt.subplots(len(kinds), 1, figsize=(9.5, 4.5 * len(kinds)), squeeze=False)
    colors = {
        ("A", "probe_logreg"): "#c81e1e",
        ("A", "probe_svm"): "#e69f00",
        ("B", "probe_logreg"): "#1f3fbf",
        ("B", "probe_svm"): "#56b4e9",
    }
    counts = []
    for ax, kind in zip(axes[:, 0], kinds):
        a, g = analysis[analysis.split_kind == kind], grid[grid.split_kind == kind]
        for (source, method), color in colors.items():
            rows = a[(a.method == method) & (a.source == source)]
            if len(rows):
                counts += [
                    i.count
                    for i in plots.mean_band(
                        ax,
                        rows,
                        "n",
                        "value",
                        f"{method.split('_')[1]} probe on base{source} features",
                        color,
                        marker="o",
                    )
                ]
        for source, rows in a[(a.method == "probe_logreg") & a.source.str.startswith("A'")].groupby("source"):
            plots.mean_band(
                ax,
                rows,
                "n",
                "value",
                f"logreg probe on {source} features (binary study)",
                "#7b3294",
                linestyle=":",
                marker="o",
            )
        for method, color in (("probe_logreg", "#2a9d4b"), ("probe_svm", "#8fd19e")):
            pretrained = a[(a.method == method) & (a.source == "P")]
            if len(pretrained):
                plots.mean_band(
                    ax,
                    pretrained,
                    "n",
                    "value",
                    f"{method.split('_')[1]} probe on the pretrained net's features",
                    color,
                    linestyle="-.",
                    marker="o",
                )
        _grid_lines(ax, g)
        ax.set(
            xlabel="Unit n whose features are probed (or at which the net is chopped)",
            ylabel="Top-1 on B",
            title=plots.KIND_LABELS[kind],
        )
        ax.grid(alpha=0.3)
        plots.legend_outside(ax)
    fig.suptitle(f"Off-the-shelf features vs trained transfer ({plots.interval_note(counts)})", fontsize=10)
    plots.save_figure(fig, out)


def cka_figure(analysis: pd.DataFrame, out: Path) -> None:
    """Heat map of CKA between units of baseA (rows) and baseB (columns), and its diagonal; a row
    per split kind. Without base nets, between the pretrained net's own units, and each unit
    against its top unit (its diagonal is 1 by definition)."""
    kinds = plots.kinds_in(analysis)
    fig, axes = plt.subplots(len(kinds), 2, figsize=(14, 5 * len(kinds)), squeeze=False)
    for (ax1, ax2), kind in zip(axes, kinds):
        a = analysis[analysis.split_kind == kind]
        rows = a[a.method == "cka"].astype({"n": int, "m": int})
        first, second = (_source_name(s) for s in rows.source.iloc[0].split("-"))
        matrix = rows.groupby(["n", "m"]).value.mean().unstack()
        im = ax1.imshow(matrix.values, vmin=0, vmax=1, cmap="magma", origin="lower")
        ax1.set_xticks(range(len(matrix.columns)), matrix.columns)
        ax1.set_yticks(range(len(matrix.index)), matrix.index)
        ax1.set(
            xlabel=f"unit of {second}",
            ylabel=f"unit of {first}",
            title=f"Linear CKA, {first} vs {second}: {plots.KIND_LABELS[kind]}",
        )
        fig.colorbar(im, ax=ax1)
        if first == second:
            top = rows[rows.m == rows.m.max()]
            plots.mean_band(ax2, top, "n", "value", f"unit n of {first} vs its top unit", "#2a9d4b", marker="o")
        else:
            plots.mean_band(
                ax2, rows[rows.n == rows.m], "n", "value", f"{first} vs {second}, same unit", "black", marker="o"
            )
        to_base = a[(a.method == "cka_to_base") & (a.n == a.m)]
        for t in ("AnB", "AnB+"):
            part = to_base[to_base.source == t]
            if len(part):
                plots.mean_band(
                    ax2, part, "n", "value", f"{t} unit n vs baseB unit n", plots.STYLE[t]["color"], marker="o"
                )
        ax2.set(
            xlabel="unit n" if first == second else plots.X_LABEL,
            ylabel="linear CKA",
            ylim=(0, 1.05),
            title="Similarity by depth",
        )
        ax2.grid(alpha=0.3)
        plots.legend_outside(ax2)
    fig.text(0.01, 0.0, f"estimator: {ESTIMATOR}", fontsize=7)
    plots.save_figure(fig, out)


def estimates_figure(analysis: pd.DataFrame, grid: pd.DataFrame, out: Path) -> None:
    """LogME, LEEP and H-score of baseA's (baseB's, the pretrained net's) units for B, each beside
    the measured AnB top-1 where the grid has it; a row per split kind."""
    methods = [("logme", "LogME"), ("leep", "LEEP"), ("hscore", "H-score")]
    kinds = plots.kinds_in(analysis)
    fig, axes = plt.subplots(len(kinds), 3, figsize=(19, 4.8 * len(kinds)), squeeze=False)
    for row, kind in zip(axes, kinds):
        a, g = analysis[analysis.split_kind == kind], grid[grid.split_kind == kind]
        for ax, (method, title) in zip(row, methods):
            for source, color in (("A", "#c81e1e"), ("B", "#1f3fbf"), ("P", "#2a9d4b")):
                rows = a[(a.method == method) & (a.source == source)]
                if len(rows):
                    plots.mean_band(
                        ax,
                        rows,
                        "n",
                        "value",
                        f"{title} of {_source_name(source)}",
                        color,
                        bounds=(-float("inf"), float("inf")),
                        marker="o",
                    )
            ax.set(xlabel="unit n", ylabel=title, title=f"{title} for task B: {plots.KIND_LABELS[kind]}")
            axes_drawn = [ax]
            if (g.treatment == "AnB").any():
                twin = ax.twinx()
                _grid_lines(twin, g, ("AnB",))
                twin.set_ylabel("AnB top-1 (trained)")
                axes_drawn.append(twin)
            ax.grid(alpha=0.3)
            handles = [h for x in axes_drawn for h in x.get_legend_handles_labels()[0]]
            labels = [lab for x in axes_drawn for lab in x.get_legend_handles_labels()[1]]
            ax.legend(
                handles, labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False
            )
    plots.save_figure(fig, out)
