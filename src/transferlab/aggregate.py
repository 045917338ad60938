"""Run metrics -> one tidy table (a row per run) and the headline numbers for `dvc exp show`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from transferlab.errors import MissingRunError
from transferlab.runs import RunSpec

# The statistic that tables and figures use: the paper's mean of the k best evaluations.
STATISTIC = "topk_mean_top1"
ROW_KEYS = ("final_top1", "best_top1", "topk_mean_top1", "best_k", "evaluations", "seed", "wall_time_s", "device", "git_revision")


def read_runs(specs: list[RunSpec], metrics_path) -> list[dict]:
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
                "split": spec.split,
                "split_kind": "random" if spec.split.isdigit() else "manmade_natural",
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
