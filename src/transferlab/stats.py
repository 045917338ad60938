"""Intervals for numbers that get published: one method, and none from fewer than 3 values.

The method: the mean with a two-sided 95% Student t-interval over the values (runs over
splits x replicates, or paired differences), clipped to the range the quantity can take
([0, 1] for accuracies, [-1, 1] for differences of accuracies and for correlations). With 3
values the t-interval is wide, as it should be; from 1 or 2 values no interval is reported
(null in JSON, "n/a" in tables, no band in figures), since one or two runs say nothing about
the spread of a run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from transferlab.accuracy import MEAN_CLASS

MIN_VALUES = 3  # fewer values: no interval
STATISTIC = "topk_mean_top1"  # the paper's statistic: the mean of the k best test evaluations (chosen on test)
VAL_SELECTED = "test_top1_at_best_val"  # test top-1 at the evaluation chosen on the run's validation part
STATISTIC_TEXT = {
    VAL_SELECTED: "test top-1 at the best validation evaluation",
    STATISTIC: "mean of the k best test evaluations",
}
ROW_KEYS = (
    "final_top1",
    "best_top1",
    "topk_mean_top1",
    MEAN_CLASS,  # where the test classes are unbalanced (else empty)
    "best_k",
    "evaluations",
    "seed",
    "device",
)
ACCURACY = (0.0, 1.0)
DIFFERENCE = (-1.0, 1.0)  # paired differences of accuracies; correlations
METHOD = "mean with a 95% t-interval, clipped to the quantity's range; none from fewer than 3 values"


def reported_top1(m: dict) -> float:
    """A run's top-1 in every table and figure: chosen on validation where the run has a
    validation part (selecting on the test set one reports is optimistic), else the paper's."""
    return m[statistic_of(m)]


def statistic_of(m: dict) -> str:
    """Which statistic reported_top1 took from a run's metrics: VAL_SELECTED or STATISTIC."""
    return VAL_SELECTED if VAL_SELECTED in m else STATISTIC


def statistic_text(keys: Iterable[str]) -> str:
    """What the top-1 of a table or figure is, from the statistics of its runs."""
    used = [k for k in (VAL_SELECTED, STATISTIC) if k in set(keys)]
    if len(used) == 2:
        return "test top-1 at the best validation evaluation where a run validated, else the mean of its k best"
    return STATISTIC_TEXT[used[0] if used else STATISTIC]


def split_kind(split_id: str) -> str:
    """ "random" for a seeded split, else the split id itself: "mn", "nm", "classes", "cross" or
    "all". Intervals pool the runs of one kind only."""
    return "random" if split_id.isdigit() else split_id


@dataclass(frozen=True)
class Interval:
    """A mean over `count` values and its 95% interval (None when there are too few values)."""

    mean: float
    low: float | None
    high: float | None
    count: int

    def fields(self, name: str) -> dict[str, float | int | None]:
        """For metrics JSON: name, name_ci95_low, name_ci95_high (null without an interval), name_count."""
        return {
            name: self.mean,
            f"{name}_ci95_low": self.low,
            f"{name}_ci95_high": self.high,
            f"{name}_count": self.count,
        }

    def text(self, signed: bool = False) -> str:
        """For tables: "0.712 [0.690, 0.735]" or "0.712 (n/a: 2 values)"."""
        fmt = "+.3f" if signed else ".3f"
        if self.low is None or self.high is None:
            return f"{self.mean:{fmt}} (interval n/a: {self.count} value{'s' if self.count != 1 else ''})"
        return f"{self.mean:{fmt}} [{self.low:{fmt}}, {self.high:{fmt}}]"


def interval(values: Iterable[float], bounds: tuple[float, float] = ACCURACY) -> Interval:
    """Mean of the finite values and, from at least 3 of them, its clipped 95% t-interval."""
    # Student's t quantile: the function scipy.stats.t.ppf calls (scipy.stats itself takes 0.6 s
    # to import, a fifth of a report stage)
    from scipy.special import stdtrit

    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    if not v:
        return Interval(float("nan"), None, None, 0)
    mean = sum(v) / len(v)
    if len(v) < MIN_VALUES:
        return Interval(mean, None, None, len(v))
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1))
    half = float(stdtrit(len(v) - 1, 0.975)) * sd / math.sqrt(len(v))
    return Interval(mean, max(bounds[0], mean - half), min(bounds[1], mean + half), len(v))


def spearman(x: Iterable[float], y: Iterable[float]) -> float:
    """Spearman's rho: Pearson's r of the average ranks (pandas' `rank`, scipy's rankdata
    "average"), through np.corrcoef as scipy.stats.spearmanr computes its statistic, without
    importing scipy.stats."""
    import numpy as np
    import pandas as pd

    ranks = pd.DataFrame({"x": np.asarray(list(x), dtype=float), "y": np.asarray(list(y), dtype=float)}).rank()
    return float(np.corrcoef(ranks.to_numpy(), rowvar=False)[1, 0])
