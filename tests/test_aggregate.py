import json

import pandas as pd
import pytest

from transferlab import aggregate as agg
from transferlab import plots
from transferlab.config import parse_params
from transferlab.runs import planned_runs
from conftest import tiny_params


def _write_metrics(root, specs, value):
    for spec in specs:
        path = root / str(spec) / "metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"topk_mean_top1": value(spec), "final_top1": value(spec), "params": {"model": {"name": "convnet8"}}}))


def _value(spec):
    """Base 0.6; BnB dips by 0.1 at n=7; AnB drops 0.2 at n=7; AnB+ gains 0.05; random drops 0.5."""
    top = spec.n == 7
    return {"base": 0.6, "BnB": 0.5 if top else 0.6, "AnB": 0.4 if top else 0.58, "BnB+": 0.6, "AnB+": 0.65, "random": 0.1 if top else 0.55}[spec.treatment] + 0.01 * spec.replicate


@pytest.fixture
def table(tmp_path):
    specs = planned_runs(parse_params(tiny_params(replicates=[0, 1, 2], splits=[0, "mn"])))
    _write_metrics(tmp_path, specs, _value)
    return agg.tidy_table(specs, agg.read_runs(specs, lambda s: tmp_path / str(s) / "metrics.json"))


def test_one_tidy_row_per_run(table):
    assert len(table) == 2 * 3 * 12
    assert table.run_id.is_unique
    row = table[table.run_id == "smn/A7B+/r1"].iloc[0]
    assert (row.treatment, row.n, row.direction, row.split_kind, row.replicate) == ("AnB+", 7, "A->B", "manmade_natural", 1)


def test_headline_numbers(table):
    h = agg.headline(table)
    assert h["base_top1"] == pytest.approx(0.61)
    assert h["anb_drop_top"] == pytest.approx(0.2)
    assert h["anb_plus_gain"] == pytest.approx(0.05)
    assert h["bnb_dip"] == pytest.approx(0.1) and h["bnb_dip_layer"] == 7
    assert h["random_drop_top"] == pytest.approx(0.5)
    assert h["dissimilar_anb_drop_top"] == pytest.approx(0.2)


def test_only_the_runs_asked_for_are_read(tmp_path):
    specs = planned_runs(parse_params(tiny_params()))
    _write_metrics(tmp_path, specs, _value)
    stale = planned_runs(parse_params(tiny_params(splits=[5])))
    _write_metrics(tmp_path, stale, lambda s: 0.0)
    df = agg.tidy_table(specs, agg.read_runs(specs, lambda s: tmp_path / str(s) / "metrics.json"))
    assert set(df.split) == {"0"}
    (tmp_path / "s0/A1B/r0/metrics.json").unlink()
    with pytest.raises(agg.MissingRunError, match="1 run.*s0/A1B/r0"):
        agg.read_runs(specs, lambda s: tmp_path / str(s) / "metrics.json")


def test_mean_interval():
    mean, half = plots.mean_interval(pd.Series([1.0, 2.0, 3.0]))
    assert mean == 2.0 and half == pytest.approx(2.4841, rel=1e-3)  # t(0.975, 2) * 1 / sqrt(3)
    assert plots.mean_interval(pd.Series([0.5])) == (0.5, 0.0)


def test_figures_are_drawn(table, tmp_path):
    plots.transfer_figure(table, tmp_path / "fig" / "transfer.png")
    plots.relative_figure(table, tmp_path / "fig" / "transfer_relative.png")
    for name in ("transfer.png", "transfer_relative.png"):
        data = (tmp_path / "fig" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_the_papers_curves_come_from_its_per_network_results():
    ref = plots.paper_deltas().set_index(["series", "n"]).delta
    # the reference README's means: AnB at n = 7 is 0.5425 against the random halves' base 0.6251
    assert ref["AnB, random splits (similar)", 7] == pytest.approx(0.5425 - 0.6251, abs=1e-3)
    assert ref["AnB, random splits (similar)", 1] == pytest.approx(0.6282 - 0.6251, abs=1e-3)
    assert len(ref) == 3 * 7 and (ref.xs("random, frozen layers (control)") < 0).all()


def test_table_and_plot_code_do_not_import_torch():
    import subprocess
    import sys

    code = "import sys, transferlab.plots, transferlab.aggregate; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
