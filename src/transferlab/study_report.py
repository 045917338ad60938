"""What a study's report stage makes, and how it reads its runs: exactly the runs params.yaml
asks for (never a glob of a folder: an older sweep's runs must not leak into a table); a
missing one names itself and stops this study's report only."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from transferlab.errors import MissingRunError
from transferlab.runs import Layout, Run


@dataclass
class StudyReport:
    """A study's tidy table (a row per run or value), its headline numbers (numbers only, for
    `dvc exp show`), its markdown tables, its figures (name -> draw(path), or the reason it is
    not drawn) and its plot data: small (x, series, y) tables of the headline curves that
    dvc.yaml's `plots:` draws, so that `dvc plots diff` overlays experiments."""

    table: pd.DataFrame
    headline: dict
    figures: dict[str, Callable[[Path], None] | str]
    texts: dict[str, str] = field(default_factory=dict)
    plot_data: dict[str, pd.DataFrame] = field(default_factory=dict)


SERIES = "series"  # the column naming each line of a plot table (workflow/plots/series*.json colour by it)


def series_means(df: pd.DataFrame, x: str, y: str, series: pd.Series, name: str | None = None) -> pd.DataFrame:
    """A plot table: the mean of `y` per x and series (a label per row of df), as columns
    x, "series", name (default y), in the order of x."""
    name = name or y
    if df.empty:
        return pd.DataFrame(columns=[x, SERIES, name])
    means = df.assign(**{SERIES: series}).groupby([SERIES, x], sort=False)[y].mean().reset_index()
    return means.rename(columns={y: name})[[x, SERIES, name]]


def read_runs(runs: list[Run], layout: Layout) -> list[dict]:
    """The metrics of exactly these runs."""
    missing = [str(r) for r in runs if not layout.metrics(r).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise MissingRunError(
            f"{len(missing)} run(s) asked for by params.yaml have no metrics: {', '.join(missing[:3])}{more}"
        )
    return [json.loads(layout.metrics(r).read_text()) for r in runs]
