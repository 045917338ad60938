"""The plot stage: every study's figures from the tidy table; a study that did not run gets one
line instead of a figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def draw_all(df: pd.DataFrame, folder: Path) -> list[str]:
    """Draw each figure whose study ran into `folder`; one line per figure, drawn or not."""
    from transferlab.analysis import report as analysis_report
    from transferlab.studies.binary import report as binary_report
    from transferlab.studies.grid import report as grid_report
    from transferlab.studies.strategies import report as strategies_report

    grid, binary, curves, analysis = (df[df.study == s] for s in ("transfer", "binary", "binary_curves", "analysis"))
    figures = {
        "transfer.png": (grid, lambda out: grid_report.transfer_figure(grid, out), "no grid runs"),
        "transfer_relative.png": (grid, lambda out: grid_report.relative_figure(grid, out), "no grid runs"),
        "binary_beta.png": (binary, lambda out: binary_report.beta_figure(binary, out), "no binary-study runs"),
        "binary_tradeoff.png": (binary, lambda out: binary_report.tradeoff_figure(binary, out), "no binary-study runs"),
        "binary_curves.png": (curves, lambda out: binary_report.curves_figure(curves, out), "no binary-study runs"),
        "probe.png": (analysis, lambda out: analysis_report.probe_figure(analysis, grid, out), "no analysis rows"),
        "cka.png": (analysis, lambda out: analysis_report.cka_figure(analysis, out), "no analysis rows"),
        "estimates.png": (
            analysis,
            lambda out: analysis_report.estimates_figure(analysis, grid, out),
            "no analysis rows",
        ),
        "strategies.png": (
            df[df.study == "strategies"],
            lambda out: strategies_report.strategies_figure(df, out),
            "not run: strategies.names is []",
        ),
        "cut.png": (
            df[df.study == "cut"],
            lambda out: strategies_report.cut_figure(df, out),
            "not run: strategies.cut_layers is []",
        ),
    }
    lines = []
    for name, (rows, draw, why_not) in figures.items():
        if rows.empty:
            lines.append(f"{folder / name}: not drawn ({why_not})")
            (folder / name).unlink(missing_ok=True)  # a figure of an earlier run must not pass for this one's
            continue
        draw(folder / name)
        lines.append(f"{folder / name}")
    return lines
