"""Run metrics -> one tidy table (a row per run) and the headline numbers for `dvc exp show`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.errors import MissingRunError
from transferlab.runs import BinaryRun, RunSpec
from transferlab.stats import DIFFERENCE, interval

# The statistic that tables and figures use: the paper's mean of the k best evaluations.
STATISTIC = "topk_mean_top1"
ROW_KEYS = ("final_top1", "best_top1", "topk_mean_top1", "best_k", "evaluations", "seed", "wall_time_s", "device", "git_revision")


def read_runs(specs: list[RunSpec] | list[BinaryRun], metrics_path) -> list[dict]:
    """The metrics of exactly these runs (never a glob: stale runs must not leak in)."""
    missing = [str(s) for s in specs if not Path(metrics_path(s)).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise MissingRunError(f"{len(missing)} run(s) asked for by params.yaml have no metrics: {', '.join(missing[:3])}{more}")
    return [json.loads(Path(metrics_path(s)).read_text()) for s in specs]


def tidy_table(specs: list[RunSpec], metrics: list[dict]) -> pd.DataFrame:
    """One row per run: its id, design factors, metrics and key parameters."""
    rows = []
    for spec, m in zip(specs, metrics):
        params = m.get("params", {})
        phase = m.get("train", {})  # the run's effective training settings
        rows.append(
            {
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
                **{k: m.get(k) for k in ROW_KEYS},
                "model": params.get("model", {}).get("name"),
                "model_width": params.get("model", {}).get("width"),
                "epochs": phase.get("epochs"),
                "lr": phase.get("lr"),
            }
        )
    return pd.DataFrame(rows)


def split_kind(split_id: str) -> str:
    """"random" for a seeded split, else the split id itself: "mn", "nm", "classes", "cross" or "all"."""
    return "random" if split_id.isdigit() else split_id


# Dissimilar split kinds: man-made/natural either way round, a hand-made class list, another data set.
DISSIMILAR_KINDS = ("mn", "nm", "classes", "cross")


def with_base(df: pd.DataFrame) -> pd.DataFrame:
    """Add `base_top1` (the base net of the same split, target half and replicate) and `delta`."""
    base = df[df.treatment == "base"][["split", "target", "replicate", STATISTIC]].rename(columns={STATISTIC: "base_top1"})
    out = df.merge(base, on=["split", "target", "replicate"], how="left")
    out["delta"] = out[STATISTIC] - out["base_top1"]
    return out


def headline(df: pd.DataFrame) -> dict:
    """Headline numbers of the random splits, with 95% intervals over split x replicate pairs,
    and the AnB drop at the top layer per split kind."""
    d = with_base(df)
    out: dict = {"runs": int(len(df))}
    rnd = d[d.split_kind == "random"]
    if len(rnd):
        out.update(_effects(rnd))
    anb = d[d.treatment == "AnB"]
    out["anb_drop_top_by_kind"] = {kind: float(-g[g.n == g.n.max()].delta.mean()) for kind, g in anb.groupby("split_kind")}
    return out


def _per_pair(d: pd.DataFrame, treatment: str, reduce) -> pd.Series:
    """One value per (split, target, replicate): `reduce` of that treatment's deltas by n."""
    rows = d[d.treatment == treatment]
    return pd.Series([reduce(g.set_index("n").delta.sort_index()) for _, g in rows.groupby(["split", "target", "replicate"])], dtype=float)


def _effects(d: pd.DataFrame) -> dict:
    """Base top-1; mean AnB+ gain; AnB and random-control drops at the top layer; deepest BnB dip.
    Each difference is paired with the base net of its own split, half and replicate."""
    out = interval(d[d.treatment == "base"][STATISTIC]).fields("base_top1")
    treatments = set(d.treatment)
    if "AnB+" in treatments:
        out |= interval(_per_pair(d, "AnB+", lambda s: s.mean()), DIFFERENCE).fields("anb_plus_gain")
    if "AnB" in treatments:
        out |= interval(_per_pair(d, "AnB", lambda s: -s.iloc[-1]), DIFFERENCE).fields("anb_drop_top")
    if "random" in treatments:
        out |= interval(_per_pair(d, "random", lambda s: -s.iloc[-1]), DIFFERENCE).fields("random_drop_top")
    if "BnB" in treatments:
        by_n = d[d.treatment == "BnB"].groupby("n").delta.mean()
        out |= {"bnb_dip": float(-by_n.min()), "bnb_dip_layer": int(by_n.idxmin())}
    return out


# --- the binary-partition study ---------------------------------------------------------------


def _b_statistic(m: dict) -> float:
    """Top-1 on B: at the best validation evaluation (early stopping), else the paper's statistic."""
    return m.get("test_top1_at_best_val", m[STATISTIC])


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
                "heads": m.get("heads"),
                "partition_seed": r.partition_seed,
                "frozen": r.frozen if r.frozen is not None else -1,
                "a_top1": by_id[str(r.source)][STATISTIC],
                "b_top1": _b_statistic(m) if r.frozen is not None else float("nan"),
                **{k: m.get(k) for k in ROW_KEYS},
            }
        )
    return pd.DataFrame(rows)


def binary_paired(df: pd.DataFrame) -> pd.DataFrame:
    """Fine-tuning runs with their beta = 0 control (same split, partition seed, replicate and
    frozen units): `b_gain` (top-1 on B minus the control's) and `a_loss` (control's top-1 on
    A minus this A' net's)."""
    b = df[df.treatment == "binaryB"]
    keys = ["split", "partition_seed", "replicate", "frozen"]
    control = b[b.beta == 0][keys + ["a_top1", "b_top1"]].rename(columns={"a_top1": "a_control", "b_top1": "b_control"})
    out = b[b.beta != 0].merge(control, on=keys, how="inner")
    return out.assign(b_gain=out.b_top1 - out.b_control, a_loss=out.a_control - out.a_top1)


def beta_key(beta: float) -> str:
    return f"beta_{beta:g}".replace(".", "p")


def binary_headline(df: pd.DataFrame) -> dict:
    """Per beta: mean paired gain on B and loss on A (95% intervals over the pairs), and the
    gain per split kind and per split (the study found gains confounded with the split)."""
    paired = binary_paired(df)
    out = {}
    for beta, g in paired.groupby("beta"):
        out[beta_key(beta)] = {
            **interval(g.b_gain, DIFFERENCE).fields("b_gain"),
            **interval(g.a_loss, DIFFERENCE).fields("a_loss"),
            "b_gain_by_kind": {k: float(v) for k, v in g.groupby("split_kind").b_gain.mean().items()},
            "b_gain_by_split": {f"s{k}": float(v) for k, v in g.groupby("split").b_gain.mean().items()},
        }
    return out


# --- the per-layer analysis --------------------------------------------------------------------

ANALYSIS_METHODS = ("probe_logreg", "probe_svm", "logme", "leep", "hscore")


def analysis_table(params, path_of) -> pd.DataFrame:
    """Rows (method, source, n, m, value) of every analysis params.yaml asks for."""
    missing = [str(path_of(str(s), r)) for s in params.splits for r in params.replicates if not Path(path_of(str(s), r)).is_file()]
    if missing:
        raise MissingRunError(f"{len(missing)} analysis file(s) asked for by params.yaml are missing: {', '.join(missing[:3])}")
    rows = []
    for split in params.splits:
        for rep in params.replicates:
            data = json.loads(Path(path_of(str(split), rep)).read_text())
            rows += [{"study": "analysis", "split": str(split), "split_kind": split_kind(str(split)), "replicate": rep, **r} for r in data["rows"]]
    return pd.DataFrame(rows)


def analysis_headline(analysis: pd.DataFrame, grid: pd.DataFrame) -> dict:
    """Per method, the Spearman rank correlation across baseA's units between its value and
    (a) the AnB top-1 the grid measured (AnB retrains the layers above n), and (b) the logistic
    probe's top-1 at the same unit (what a linear read-out of unit n achieves, which is what the
    estimators claim to predict); one per split and replicate, mean and 95% interval."""
    out: dict = {}
    anb = grid[grid.treatment == "AnB"].groupby(["split", "replicate", "n"])[STATISTIC].mean()
    probe = analysis[(analysis.method == "probe_logreg") & (analysis.source == "A")].groupby(["split", "replicate", "n"]).value.mean()
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


def _spearman_by_pair(rows: pd.DataFrame, measured: pd.Series) -> list[float]:
    """Spearman's rho across units, per (split, replicate), where both sides vary."""
    from scipy.stats import spearmanr

    rhos = []
    for (split, rep), g in rows.groupby(["split", "replicate"]):
        if (split, rep) not in measured.index.droplevel("n"):
            continue
        both = g.groupby("n").value.mean().to_frame().join(measured.loc[(split, rep)].rename("measured"), how="inner")
        if len(both) >= 3 and both.value.nunique() > 1 and both.measured.nunique() > 1:  # else undefined or meaningless
            rhos.append(float(spearmanr(both.value, both.measured).statistic))
    return rhos


def classifier_agreement(analysis: pd.DataFrame, strategies: pd.DataFrame) -> dict:
    """The `classifier` strategy (a new classifier on baseA's frozen top unit, trained on B)
    against each method's value at baseA's top unit: Spearman across split x replicate pairs
    (with all of B's images), from at least 3 pairs."""
    from scipy.stats import spearmanr

    if strategies.empty or "strategy" not in strategies:
        return {}
    clf = strategies[(strategies.strategy == "classifier") & (strategies.images_per_class == "all")].set_index(["split", "replicate"]).top1
    out = {}
    for method in ANALYSIS_METHODS:
        rows = analysis[(analysis.method == method) & (analysis.source == "A")]
        top = rows[rows.n == rows.n.max()].groupby(["split", "replicate"]).value.mean()
        both = top.to_frame().join(clf, how="inner")
        if len(both) >= 3 and both.value.nunique() > 1 and both.top1.nunique() > 1:
            out[f"spearman_{method}_vs_classifier"] = float(spearmanr(both.value, both.top1).statistic)
    return out


# --- strategies and the cut study ----------------------------------------------------------------

SIMILARITY = {"random": "similar", **{kind: "different" for kind in DISSIMILAR_KINDS}, "all": "same"}
CUT_KEYS = ("parameters", "size_bytes", "peak_memory_bytes", "peak_memory_method", "latency_s_per_image", "latency_batch")


def strategy_table(runs, metrics: list[dict]) -> pd.DataFrame:
    """One row per strategy or cut run; `top1` is the paper's statistic on B's test images."""
    rows = []
    for r, m in zip(runs, metrics):
        kind = split_kind(r.split)
        rows.append(
            {
                "run_id": str(r),
                "study": "strategies" if r.name != "cut" else "cut",
                "split": r.split,
                "split_kind": kind,
                "similarity": SIMILARITY.get(kind, kind),
                "replicate": r.replicate,
                "treatment": "cut" if r.name == "cut" else f"strategy:{r.name}",
                "strategy": r.name,
                "source": r.source,
                "images_per_class": str(r.images_per_class),
                "n": r.n,
                "target": "B",
                "top1": m[STATISTIC],
                **{k: m.get(k) for k in ROW_KEYS},
                **{k: m.get(k) for k in CUT_KEYS if r.name == "cut"},
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
    its margin over the runner-up (paired over splits and replicates, 95% half-width)."""
    s = df[df.study == "strategies"] if "study" in df else df
    if s.empty:
        return "# Which strategy when\n\nNot run: strategies.names is [] in params.yaml.\n"
    volumes = volume_order(s.images_per_class) if len(s) else []
    columns = {"little": volumes[0] if volumes else None, "lots": volumes[-1] if volumes else None}
    lines = [
        "# Which strategy when: measured (top-1 on B, mean of the k best evaluations)",
        "",
        f"Data volume: little = {columns['little']} images per class, lots = {columns['lots']}. Similarity: random splits are similar, man-made/natural and cross-data-set splits different.",
        "",
        "| | little data | lots of data |",
        "|---|---|---|",
    ]
    for similarity in ("similar", "different"):
        cells = [_cell(s[(s.similarity == similarity) & (s.images_per_class == str(columns[v]))], LECTURE_ADVICE[(similarity, v)], similarity) for v in ("little", "lots")]
        lines.append(f"| **{similarity}** | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


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
    """Per n: parameters, size on disk, peak inference memory, latency, top-1 on B."""
    c = df[df.study == "cut"] if "study" in df else df
    if c.empty:
        return "# baseA cut after unit n\n\nNot run: strategies.cut_layers is [] in params.yaml.\n"
    lines = [
        "# baseA cut after unit n, with pooling and a new classifier, fine-tuned on B",
        "",
        "| n | unit | parameters | size (MB) | peak memory (MB) | latency (ms / image) | top-1 on B |",
        "|---|---|---|---|---|---|---|",
    ]
    for (source, n), g in c.groupby(["source", "n"]):
        name = unit_names[int(n) - 1] if int(n) <= len(unit_names) else ""
        lines.append(
            f"| {int(n)} | {name}{' (pretrained)' if source == 'P' else ''} | {int(g.parameters.iloc[0]):,} | {g.size_bytes.mean() / 1e6:.2f} | {g.peak_memory_bytes.mean() / 1e6:.2f} "
            f"| {1e3 * g.latency_s_per_image.median():.3f} | {g.top1.mean():.3f} |"
        )
    lines += ["", f"Peak memory: {c.peak_memory_method.iloc[0]}; latency: median of timed batches of {int(c.latency_batch.iloc[0])} after warm-up, on {c.device.iloc[0]}."]
    return "\n".join(lines) + "\n"


# --- the stage: every study's rows -> the tidy table, tables and headline metrics ---------------


def write_reports(params, layout, results: Path, metrics_out: Path) -> list[str]:
    """Read exactly the runs params asks for; write the tidy table (.parquet and .csv), the
    markdown tables and the headline metrics (numbers only, for `dvc exp show`)."""
    from transferlab.artifacts import atomic_json, atomic_write
    from transferlab.models import model_units
    from transferlab.runs import planned_binary_runs, planned_runs, planned_strategy_runs

    specs, binary_runs, strategy_runs = planned_runs(params), planned_binary_runs(params), planned_strategy_runs(params)
    grid = tidy_table(specs, read_runs(specs, layout.metrics))
    binary = binary_table(binary_runs, read_runs(binary_runs, layout.metrics))
    strategies = strategy_table(strategy_runs, read_runs(strategy_runs, layout.metrics))
    analysis = analysis_table(params, layout.analysis)
    df = pd.concat([t for t in (grid, binary, strategies, analysis) if len(t)], ignore_index=True)
    tables = {"take_home.md": take_home(strategies), "cut.md": cut_table(strategies, model_units(params.model.name, **params.model.options()))}
    for name, text in tables.items():
        atomic_write(results.parent / "tables" / name, lambda tmp, text=text: tmp.write_text(text))
    atomic_write(results, lambda tmp: df.to_parquet(tmp, index=False))
    atomic_write(results.with_suffix(".csv"), lambda tmp: df.to_csv(tmp, index=False))
    analysis_numbers = {**analysis_headline(analysis, grid), **classifier_agreement(analysis, strategies)}
    atomic_json({**headline(grid), "binary": binary_headline(binary), "analysis": analysis_numbers}, metrics_out)
    not_run = [f"{results.parent / 'tables' / name}: {text.splitlines()[2]}" for name, text in tables.items() if text.splitlines()[2].startswith("Not run")]
    return [f"{results}: {len(df)} rows ({len(grid)} grid runs, {len(binary)} binary, {len(strategies)} strategy and cut, {len(analysis)} analysis values); {metrics_out}", *not_run]
