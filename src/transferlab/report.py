"""The report stages, one per study (grid, binary, strategies, size, analysis): the study's table
(reports/<study>/results.parquet and .csv), its headline numbers (reports/<study>/metrics.json,
numbers only, for `dvc exp show`), its plot tables (reports/<study>/plots/, for `dvc plots`),
its markdown tables (reports/tables/) and its figures (reports/figures/), each written
atomically. A figure of a study part that did not run says
so (the image and one line): an earlier run's must not pass for this one's."""

from __future__ import annotations

from transferlab.artifacts import atomic_json, atomic_write
from transferlab.plots import not_run_figure
from transferlab.runs import Layout
from transferlab.study_report import StudyReport


def write_report(study: str, report: StudyReport, layout: Layout) -> list[str]:
    """Write one study's report; one line per output."""
    folder = layout.report_dir(study)
    table = folder / "results.parquet"
    atomic_write(table, lambda tmp: report.table.to_parquet(tmp, index=False))
    atomic_write(table.with_suffix(".csv"), lambda tmp: report.table.to_csv(tmp, index=False))
    atomic_json(report.headline, folder / "metrics.json")
    lines = [f"{table}: {len(report.table)} rows; {folder / 'metrics.json'}"]
    for name, data in report.plot_data.items():
        out = layout.plot_data(study) / name
        atomic_write(out, lambda tmp, data=data: data.to_csv(tmp, index=False, float_format="%.6g"))
        lines.append(f"{out}: {len(data)} points")
    for name, text in report.texts.items():
        atomic_write(layout.tables / name, lambda tmp, text=text: tmp.write_text(text))
        not_run = [line for line in text.splitlines() if line.startswith("Not run")]
        lines.append(f"{layout.tables / name}" + (f": {not_run[0]}" if not_run else ""))
    for name, draw in report.figures.items():
        out = layout.figures / name
        if isinstance(draw, str):
            not_run_figure(out, draw)
            lines.append(f"{out}: {draw} (the figure says so)")
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        draw(out)
        lines.append(str(out))
    return lines
