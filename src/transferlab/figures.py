"""Every figure of the tidy table; a study that did not run gets one line instead of a figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def draw_all(df: pd.DataFrame, folder: Path) -> list[str]:
    """Draw each figure whose study ran into `folder`; one line per figure, drawn or not."""
    from transferlab import plots, plots_analysis, plots_binary, plots_strategies

    grid, binary, analysis = (df[df.study == s] for s in ("transfer", "binary", "analysis"))
    figures = {
        "transfer.png": (grid, lambda out: plots.transfer_figure(grid, out), "no grid runs"),
        "transfer_relative.png": (grid, lambda out: plots.relative_figure(grid, out), "no grid runs"),
        "binary_beta.png": (binary, lambda out: plots_binary.beta_figure(binary, out), "no binary-study runs"),
        "binary_tradeoff.png": (binary, lambda out: plots_binary.tradeoff_figure(binary, out), "no binary-study runs"),
        "probe.png": (analysis, lambda out: plots_analysis.probe_figure(analysis, grid, out), "no analysis rows"),
        "cka.png": (analysis, lambda out: plots_analysis.cka_figure(analysis, out), "no analysis rows"),
        "estimates.png": (analysis, lambda out: plots_analysis.estimates_figure(analysis, grid, out), "no analysis rows"),
        "strategies.png": (df[df.study == "strategies"], lambda out: plots_strategies.strategies_figure(df, out), "not run: strategies.names is []"),
        "cut.png": (df[df.study == "cut"], lambda out: plots_strategies.cut_figure(df, out), "not run: strategies.cut_layers is []"),
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
