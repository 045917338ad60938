"""The aggregate stage: exactly the runs params.yaml asks for -> one tidy table (a row per run),
each study's markdown tables, and the headline numbers for `dvc exp show`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from transferlab.errors import MissingRunError
from transferlab.runs import Run


def read_runs(specs: list[Run], metrics_path) -> list[dict]:
    """The metrics of exactly these runs (never a glob: stale runs must not leak in)."""
    missing = [str(s) for s in specs if not Path(metrics_path(s)).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise MissingRunError(
            f"{len(missing)} run(s) asked for by params.yaml have no metrics: {', '.join(missing[:3])}{more}"
        )
    return [json.loads(Path(metrics_path(s)).read_text()) for s in specs]


def write_reports(params, layout, results: Path, metrics_out: Path) -> list[str]:
    """Read exactly the runs params asks for; write the tidy table (.parquet and .csv), the
    markdown tables and the headline metrics (numbers only, for `dvc exp show`)."""
    from transferlab.analysis.report import analysis_headline, analysis_table, classifier_agreement
    from transferlab.artifacts import atomic_json, atomic_write
    from transferlab.models import model_units
    from transferlab.runs import planned_binary_runs, planned_runs, planned_strategy_runs
    from transferlab.studies.binary.report import binary_curves, binary_headline, binary_table
    from transferlab.studies.grid.report import headline, tidy_table
    from transferlab.studies.strategies.report import cut_table, strategy_table, take_home

    specs, binary_runs, strategy_runs = planned_runs(params), planned_binary_runs(params), planned_strategy_runs(params)
    grid = tidy_table(specs, read_runs(specs, layout.metrics))
    binary_metrics = read_runs(binary_runs, layout.metrics)
    binary, curves = binary_table(binary_runs, binary_metrics), binary_curves(binary_runs, binary_metrics)
    strategies = strategy_table(strategy_runs, read_runs(strategy_runs, layout.metrics))
    analysis = analysis_table(params, layout.analysis)
    df = pd.concat([t for t in (grid, binary, curves, strategies, analysis) if len(t)], ignore_index=True)
    tables = {
        "take_home.md": take_home(strategies),
        "cut.md": cut_table(strategies, model_units(params.model.name, **params.model.options())),
    }
    for name, text in tables.items():
        atomic_write(results.parent / "tables" / name, lambda tmp, text=text: tmp.write_text(text))
    atomic_write(results, lambda tmp: df.to_parquet(tmp, index=False))
    atomic_write(results.with_suffix(".csv"), lambda tmp: df.to_csv(tmp, index=False))
    analysis_numbers = {**analysis_headline(analysis, grid), **classifier_agreement(analysis, strategies)}
    atomic_json({**headline(grid), "binary": binary_headline(binary), "analysis": analysis_numbers}, metrics_out)
    not_run = [
        f"{results.parent / 'tables' / name}: {line}"
        for name, text in tables.items()
        for line in text.splitlines()
        if line.startswith("Not run")
    ]
    return [
        f"{results}: {len(df)} rows ({len(grid)} grid runs, {len(binary)} binary, {len(strategies)} strategy and cut, {len(analysis)} analysis values); {metrics_out}",
        *not_run,
    ]
