"""Run metrics -> one tidy table (a row per run) and the headline numbers for `dvc exp show`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.errors import MissingRunError
from transferlab.runs import BinaryRun, RunSpec

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
        phase = params.get("base" if spec.is_base else "transfer", {})
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
    """"random" (seeded halves), "manmade_natural", "classes" or "cross"."""
    return "random" if split_id.isdigit() else "manmade_natural" if split_id in ("mn", "nm") else split_id


def with_base(df: pd.DataFrame) -> pd.DataFrame:
    """Add `base_top1` (the base net of the same split, target half and replicate) and `delta`."""
    base = df[df.treatment == "base"][["split", "target", "replicate", STATISTIC]].rename(columns={STATISTIC: "base_top1"})
    out = df.merge(base, on=["split", "target", "replicate"], how="left")
    out["delta"] = out[STATISTIC] - out["base_top1"]
    return out


def headline(df: pd.DataFrame) -> dict:
    """Headline numbers of the random splits (and the dissimilar ones, if run)."""
    d = with_base(df)
    rnd = d[d.split_kind == "random"]
    out: dict = {"statistic": STATISTIC, "runs": int(len(df))}
    if len(rnd):
        out.update(_effects(rnd))
    dis = d[d.split_kind == "manmade_natural"]
    if len(dis) and (dis.treatment == "AnB").any():
        top = dis[dis.treatment == "AnB"].n.max()
        out["dissimilar_anb_drop_top"] = float(-dis[(dis.treatment == "AnB") & (dis.n == top)].delta.mean())
    return out


def _effects(d: pd.DataFrame) -> dict:
    """Base accuracy; mean AnB+ gain; AnB drop at the top layer; deepest BnB dip; random-control drop."""
    out = {"base_top1": float(d[d.treatment == "base"][STATISTIC].mean())}
    by_n = d[d.treatment != "base"].groupby(["treatment", "n"]).delta.mean()
    if "AnB+" in by_n.index.get_level_values(0):
        out["anb_plus_gain"] = float(by_n["AnB+"].mean())
    if "AnB" in by_n.index.get_level_values(0):
        out["anb_drop_top"] = float(-by_n["AnB"].iloc[-1])
    if "BnB" in by_n.index.get_level_values(0):
        out["bnb_dip"] = float(-by_n["BnB"].min())
        out["bnb_dip_layer"] = int(by_n["BnB"].idxmin())
    if "random" in by_n.index.get_level_values(0):
        out["random_drop_top"] = float(-by_n["random"].iloc[-1])
    return out


def mean_interval(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (0 for a single value)."""
    from scipy import stats

    v = pd.Series(values).dropna().to_numpy(dtype=float)
    if len(v) < 2:
        return float(v.mean()) if len(v) else float("nan"), 0.0
    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


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
    """Per beta: mean paired gain on B and loss on A with 95% half-widths, and the gain per
    split (the study found gains confounded with the split: this shows it)."""
    paired = binary_paired(df)
    out = {}
    for beta, g in paired.groupby("beta"):
        gain, gain_ci = mean_interval(g.b_gain)
        loss, loss_ci = mean_interval(g.a_loss)
        out[beta_key(beta)] = {
            "b_gain": gain,
            "b_gain_ci95": gain_ci,
            "a_loss": loss,
            "a_loss_ci95": loss_ci,
            "pairs": int(len(g)),
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
    """Per method: Spearman rank correlation across units between its value (baseA's features)
    and the AnB top-1 the grid measured, per split and replicate; mean and 95% half-width."""
    from scipy.stats import spearmanr

    from transferlab.analysis.cka import ESTIMATOR

    out: dict = {"cka_estimator": ESTIMATOR}
    anb = grid[grid.treatment == "AnB"]
    for method in ANALYSIS_METHODS:
        rhos = []
        for (split, rep), rows in analysis[(analysis.method == method) & (analysis.source == "A")].groupby(["split", "replicate"]):
            measured = anb[(anb.split == split) & (anb.replicate == rep)].groupby("n")[STATISTIC].mean()
            both = rows.set_index("n").value.to_frame().join(measured, how="inner")
            if len(both) >= 2 and both.value.nunique() > 1 and both[STATISTIC].nunique() > 1:  # else undefined
                rhos.append(float(spearmanr(both.value, both[STATISTIC]).statistic))
        if rhos:
            mean, half = mean_interval(rhos)
            out[f"spearman_{method}"] = mean
            out[f"spearman_{method}_ci95"] = half
    return out


# --- strategies and the cut study ----------------------------------------------------------------

SIMILARITY = {"random": "similar", "manmade_natural": "different", "cross": "different"}
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


def volume_order(values) -> list[str]:
    """Images-per-class labels from little to lots ("all" last)."""
    return sorted(set(values), key=lambda v: float("inf") if v == "all" else int(v))


def take_home(df: pd.DataFrame) -> str:
    """The lecture's 2x2 table, measured: the best strategy per (similarity, data volume) cell,
    its margin over the runner-up (paired over splits and replicates, 95% half-width)."""
    from transferlab.strategies import LECTURE_ADVICE

    s = df[df.study == "strategies"]
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
        hint = "add mn or nm to splits" if similarity == "different" else "add a seed to splits"
        return f"not measured ({hint}); lecture: {advice}"
    means = rows.groupby("strategy").top1.mean().sort_values(ascending=False)
    best = means.index[0]
    if len(means) < 2:
        return f"**{best}** {means.iloc[0]:.3f}; lecture: {advice}"
    second = means.index[1]
    paired = rows.pivot_table(index=["split", "replicate"], columns="strategy", values="top1")
    margin, half = mean_interval(paired[best] - paired[second])
    spread = f"± {half:.3f}" if len(paired) > 1 else "(no interval from 1 pair: add replicates or splits)"
    return f"**{best}** {means.iloc[0]:.3f}, {margin:+.3f} {spread} over {second} ({len(paired)} pair(s)); lecture: {advice}"


def cut_table(df: pd.DataFrame, unit_names: list[str]) -> str:
    """Per n: parameters, size on disk, peak inference memory, latency, top-1 on B."""
    c = df[df.study == "cut"]
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
    if len(c):
        lines += ["", f"Peak memory: {c.peak_memory_method.iloc[0]}; latency: median of timed batches of {int(c.latency_batch.iloc[0])} after warm-up, on {c.device.iloc[0]}."]
    return "\n".join(lines) + "\n"
