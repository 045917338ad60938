import json
import math

import pandas as pd
import pytest
import yaml

from transferlab.config import parse_params
from transferlab.errors import MissingRunError
from transferlab.runs import Layout, RunSpec, planned_runs
from transferlab.studies.grid import report as agg
from transferlab.studies.grid import report as plots
from transferlab.studies.strategies.report import cut_table, take_home
from transferlab.study_report import read_runs

from conftest import tiny_params


def _write_metrics(root, specs, value):
    for spec in specs:
        path = Layout(root).metrics(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {"topk_mean_top1": value(spec), "final_top1": value(spec), "params": {"model": {"name": "convnet8"}}}
            )
        )


def _value(spec):
    """Base 0.6; BnB dips by 0.1 at n=7; AnB drops 0.2 at n=7; AnB+ gains 0.05; random drops 0.5."""
    top = spec.n == 7
    return {
        "base": 0.6,
        "BnB": 0.5 if top else 0.6,
        "AnB": 0.4 if top else 0.58,
        "BnB+": 0.6,
        "AnB+": 0.65,
        "random": 0.1 if top else 0.55,
    }[spec.treatment] + 0.01 * spec.replicate


@pytest.fixture
def table(tmp_path):
    specs = planned_runs(parse_params(tiny_params(replicates=[0, 1, 2], splits=[0, "mn"])))
    _write_metrics(tmp_path, specs, _value)
    return agg.tidy_table(specs, read_runs(specs, Layout(tmp_path)))


def test_one_tidy_row_per_run(table):
    assert len(table) == 2 * 3 * 12
    assert table.run_id.is_unique
    row = table[table.run_id == "smn/A7B+/r1"].iloc[0]
    assert (row.treatment, row.n, row.direction, row.split_kind, row.replicate) == ("AnB+", 7, "A->B", "mn", 1)


def test_headline_numbers(table):
    h = agg.headline(table)
    assert h["base_top1"] == pytest.approx(0.61)
    assert h["anb_drop_top"] == pytest.approx(0.2)
    assert h["anb_plus_gain"] == pytest.approx(0.05)
    assert h["bnb_dip"] == pytest.approx(0.1) and h["bnb_dip_layer"] == 7
    assert h["random_drop_top"] == pytest.approx(0.5)
    assert h["anb_drop_top_by_kind"] == pytest.approx({"random": 0.2, "mn": 0.2})
    # the paper's last finding, paired per split, replicate and n: AnB 0.58 / 0.4 against random 0.55 / 0.1
    gap = h["anb_minus_random_by_kind"]["mn"]
    assert (gap["n1"], gap["n7"], gap["min_over_n"], gap["top"], gap["top_count"]) == pytest.approx(
        (0.03, 0.3, 0.03, 0.3, 3)
    )
    # both halves' base nets, three replicates: an interval, clipped to what an accuracy can be
    assert h["base_top1_count"] == 6 and 0 <= h["base_top1_ci95_low"] < 0.61 < h["base_top1_ci95_high"] <= 1
    assert all(isinstance(v, (int, float, dict)) or v is None for v in h.values())  # numbers for dvc exp show


def test_a_named_split_kind_gets_its_own_headline_paired_over_replicates(tmp_path, monkeypatch):
    """Split `all` with a pretrained source (the MobileNet study): its effects, and what the
    pretrained initialisation adds at the top n (PnB+ minus the base net of the same replicate)."""
    import transferlab.config as config

    monkeypatch.setattr(config, "weight_names", lambda name: ["IMAGENET1K_V1"])
    params = tiny_params(
        replicates=[0, 1, 2], splits=["all"], **{"pretrained.weights": ["IMAGENET1K_V1"], "binary.equal_halves": False}
    )
    specs = planned_runs(parse_params(params))
    pretrained = {"PnB": 0.62, "PnB+": 0.7}  # PnB+: 0.7 + 0.01 r against base 0.6 + 0.01 r

    def value(spec):
        return pretrained[spec.treatment] + 0.01 * spec.replicate if spec.source == "P" else _value(spec)

    _write_metrics(tmp_path, specs, value)
    h = agg.headline(agg.tidy_table(specs, read_runs(specs, Layout(tmp_path))))
    assert "base_top1" not in h  # no random split: no top-level (random-split) numbers
    effects = h["effects_by_kind"]["all"]
    assert effects["pnb_plus_gain_top"] == pytest.approx(0.1) and effects["pnb_plus_gain_top_count"] == 3
    assert effects["anb_drop_top"] == pytest.approx(0.2) and effects["anb_drop_top_count"] == 3
    assert effects["base_top1_count"] == 6 and effects["base_top1_ci95_low"] is not None


def test_the_papers_random_control_runs_on_every_class_and_only_it_meets_the_papers_curve(tmp_path):
    """transfer.control_all_classes: sall/R{n}all nets read against sall/R0all (every class, no
    random units) of the same replicate; the paper's control curve beside them alone."""
    from transferlab.runs import AllClassesControl, planned_all

    params = parse_params(tiny_params(replicates=[0, 1, 2], **{"transfer.control_all_classes": [0, 1, 7]}))
    specs = [r for r in planned_all(params) if isinstance(r, (AllClassesControl, RunSpec))]
    assert [str(r) for r in specs if isinstance(r, AllClassesControl)][:3] == [
        "sall/R0all/r0",
        "sall/R0all/r1",
        "sall/R0all/r2",
    ]

    def value(spec):  # every class: base 0.5 + 0.01 r, 0.05 below it at n = 1, 0.4 below at n = 7
        if isinstance(spec, AllClassesControl):
            return 0.5 + 0.01 * spec.replicate - {0: 0.0, 1: 0.05, 7: 0.4}[spec.n]
        return _value(spec)

    _write_metrics(tmp_path, specs, value)
    table = agg.tidy_table(specs, read_runs(specs, Layout(tmp_path)))
    h = agg.headline(table)
    control = h["random_all_classes"]
    assert control["base_top1"] == pytest.approx(0.51) and control["base_top1_count"] == 3
    assert (control["drop_n1"], control["drop_n7"], control["drop_top"]) == pytest.approx((0.05, 0.4, 0.4))
    assert control["drop_top_count"] == 3 and control["drop_top_ci95_low"] is not None
    assert h["random_drop_top"] == pytest.approx(0.5) and h["base_top1"] == pytest.approx(0.61)  # the halves' own
    with_paper = {label: paper for _, label, _, paper in agg.relative_series(agg.with_base(table)) if paper}
    assert (
        with_paper["random weights, frozen, on every class (the paper's control)"] == "random, frozen layers (control)"
    )
    assert "random weights, frozen (control on B)" not in with_paper
    relative = agg.plot_data(table, specs, [{}] * len(specs))["transfer_relative.csv"]
    assert relative[relative.series.str.contains("every class")].top1_minus_base.round(6).tolist() == [-0.05, -0.4]
    agg.relative_figure(table, tmp_path / "transfer_relative.png")
    agg.transfer_figure(agg.halves(table), tmp_path / "transfer.png")


def test_no_interval_from_fewer_than_three_values():
    from transferlab.stats import interval

    assert interval([0.5]).low is None and interval([0.5, 0.7]).high is None and interval([0.5, 0.7]).count == 2
    assert "n/a: 2 values" in interval([0.5, 0.7]).text()
    wide = interval([0.0, 0.98, 0.99])  # the t-interval would run past 1
    assert wide.high == 1.0 and wide.low == 0.0
    i = interval([1.0, 2.0, 3.0], bounds=(-10, 10))
    assert i.mean == 2.0 and i.high - 2.0 == pytest.approx(2.4841, rel=1e-3)  # t(0.975, 2) * 1 / sqrt(3)


def test_the_interval_and_spearman_are_scipy_stats_own_to_the_last_bit():
    """stats.py computes them without importing scipy.stats (slow to import): the same numbers."""
    import numpy as np
    from scipy import stats

    from transferlab.stats import interval, spearman

    rng = np.random.default_rng(0)
    for n in range(3, 40):
        v = [float(x) for x in rng.random(n)]
        mean = sum(v) / n  # the interval as it was computed with scipy.stats
        half = float(stats.t.ppf(0.975, n - 1)) * math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) / math.sqrt(n)
        assert interval(v, bounds=(-9, 9)).high == mean + half
        x, y = rng.integers(0, 4, n) / 3, rng.random(n)  # ties in x: average ranks
        x[:2], y[: n // 3] = (0, 1), y[0]  # and in y (neither constant: the callers leave that out)
        assert spearman(x, y) == float(stats.spearmanr(x, y).statistic)


def test_only_the_runs_asked_for_are_read(tmp_path):
    specs = planned_runs(parse_params(tiny_params()))
    _write_metrics(tmp_path, specs, _value)
    stale = planned_runs(parse_params(tiny_params(splits=[5])))
    _write_metrics(tmp_path, stale, lambda s: 0.0)
    df = agg.tidy_table(specs, read_runs(specs, Layout(tmp_path)))
    assert set(df.split) == {"0"}
    Layout(tmp_path).metrics(specs[2]).unlink()
    with pytest.raises(MissingRunError, match=f"1 run.*{specs[2]}"):
        read_runs(specs, Layout(tmp_path))


def test_figures_are_drawn(table, tmp_path):
    plots.transfer_figure(table, tmp_path / "fig" / "transfer.png")
    plots.relative_figure(table, tmp_path / "fig" / "transfer_relative.png")
    for name in ("transfer.png", "transfer_relative.png"):
        data = (tmp_path / "fig" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def _noisy_table(tmp_path, splits):
    """Runs of the tiny grid with noise of 0.1 around the fixture's values, clipped to [0, 1]."""
    import numpy as np

    rng = np.random.default_rng(1)
    specs = planned_runs(
        parse_params(tiny_params(splits=splits, **{"split.method": "random", "split.classes_a": [0, 1, 2, 3]}))
    )
    _write_metrics(tmp_path, specs, lambda spec: float(np.clip(_value(spec) + rng.normal(0, 0.1), 0, 1)))
    return agg.tidy_table(specs, read_runs(specs, Layout(tmp_path)))


@pytest.mark.parametrize("splits", [[0], [0, 1], list(range(20)), [0, 1, "classes"]], ids=["1", "2", "20", "2+classes"])
def test_figures_read_correctly_with_1_2_or_20_splits(tmp_path, splits, monkeypatch):
    """Figure 2 (absolute top-1) has points and mean lines only: splits differ in difficulty, and
    an interval over unpaired levels would cover the axis. Figure 3 (paired differences) has
    bands where a point has at least 3 runs, and they stay in the range a difference can take."""
    import matplotlib.pyplot as plt

    table = _noisy_table(tmp_path, splits)
    axes_seen = []
    monkeypatch.setattr("transferlab.plots.save_figure", lambda fig, out: (axes_seen.extend(fig.axes), plt.close(fig)))
    plots.transfer_figure(table, tmp_path / "t.png")
    low, high = axes_seen[0].get_ylim()
    assert -0.1 <= low and high <= 1.1
    assert not [c for ax in axes_seen for c in ax.collections if type(c).__name__ == "FillBetweenPolyCollection"]
    axes_seen.clear()
    plots.relative_figure(table, tmp_path / "r.png")
    labels = axes_seen[0].get_legend_handles_labels()[1]
    low, high = axes_seen[0].get_ylim()
    assert -1.1 <= low and high <= 1.1
    bands = [c for ax in axes_seen for c in ax.collections if type(c).__name__ == "FillBetweenPolyCollection"]
    assert bool(bands) == (len(splits) >= 3)  # paired differences: a band from 3 pairs (the random control pools kinds)
    if "classes" in splits:
        assert any("hand-made class split" in label for label in labels)
        assert any(label.startswith("AnB minus random control, hand-made") for label in labels)
    else:
        assert not any("minus random" in label for label in labels)  # drawn for dissimilar splits only


def test_outputs_get_the_usual_file_modes(tmp_path):
    import os

    from transferlab.artifacts import atomic_dir, atomic_json

    old = os.umask(0o022)
    try:
        atomic_json({"a": 1}, tmp_path / "m.json")
        with atomic_dir(tmp_path / "d") as d:
            (d / "x").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_tables_of_a_study_that_did_not_run_say_so():
    empty = pd.DataFrame([])
    assert "Not run: strategies.names is []" in take_home(empty)
    assert "Not run: strategies.cut_layers is []" in cut_table(empty, ["conv1"])


def test_the_papers_curves_come_from_its_per_network_results():
    ref = plots.paper_deltas().set_index(["series", "n"]).delta
    # the reference README's means: AnB at n = 7 is 0.5425 against the random halves' base 0.6251
    assert ref["AnB, random splits (similar)", 7] == pytest.approx(0.5425 - 0.6251, abs=1e-3)
    assert ref["AnB, random splits (similar)", 1] == pytest.approx(0.6282 - 0.6251, abs=1e-3)
    assert len(ref) == 4 * 7 and (ref.xs("random, frozen layers (control)") < 0).all()
    # each direction of the man-made/natural split against its own target's base: nm is natural -> man-made
    assert ref["AnB, natural -> man-made", 7] == pytest.approx(0.2914 - 0.5372, abs=1e-4)
    assert ref["AnB, man-made -> natural", 7] == pytest.approx(0.3990 - 0.6534, abs=1e-4)


def test_table_and_plot_code_do_not_import_torch():
    import subprocess
    import sys

    code = "import sys, transferlab.plots, transferlab.report, transferlab.studies.grid.report, transferlab.studies.binary.report, transferlab.studies.strategies.report, transferlab.analysis.report; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


@pytest.mark.parametrize("command", [["plan", "--no-ids"], ["report", "grid", "--root", "."]])
def test_plan_and_a_report_run_without_importing_torch(tmp_path, command):
    """The real commands (the report stops at its first missing run, after reading params)."""
    import subprocess
    import sys

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    code = f"import sys; sys.argv = ['transferlab', *{command!r}]; from transferlab.cli import run_app; run_app(); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "False", proc.stdout + proc.stderr


def test_the_cut_table_has_the_studys_val_and_test_columns_and_the_whole_net_row():
    from transferlab.runs import StrategyRun
    from transferlab.studies.strategies.report import strategy_table

    runs = [StrategyRun("all", "cut", "all", n, 0, "P") for n in (1, 11, 13)]
    cut = {
        "parameters": 1000,
        "flops_per_image": 2_500_000,
        "flops_method": "counted",
        "size_bytes": 4000,
        "peak_memory_bytes": 2e6,
        "peak_memory_method": "m",
        "latency_s_per_image": 1e-3,
        "latency_batch": 8,
        "device": "cpu",
    }
    metrics = [
        {
            "topk_mean_top1": 0.5 + n / 100,
            "best_val_top1": 0.6 + n / 100,
            "test_top1_at_best_val": 0.55 + n / 100,
            **cut,
        }
        for n in (1, 11, 13)
    ]
    table = cut_table(strategy_table(runs, metrics), [f"block{i}" for i in range(1, 14)])
    assert "| val top-1 | test top-1 at the best val |" in table
    assert "| 11 | block11 (pretrained) | 1,000 | 2.50 |" in table and "| 0.710 | 0.660 |" in table
    assert "| MFLOPs per image |" in table and "FLOPs: counted." in table
    assert "| 13 | block13 (pretrained) (the whole net: baseB+) |" in table
    without_val = cut_table(
        strategy_table(runs, [{k: v for k, v in m.items() if "val" not in k} for m in metrics]),
        [f"block{i}" for i in range(1, 14)],
    )
    assert "val top-1" not in without_val


def test_figure_2_reads_the_treatments_against_the_base_nets_of_their_target(tmp_path, monkeypatch):
    """With transfer.targets [B], the dashed base line is baseB's mean: baseA (another half, often
    easier or harder) would shift the line every treatment on B is read against."""
    import matplotlib.pyplot as plt

    table = _noisy_table(tmp_path, [0, 1, 2])
    axes_seen = []
    monkeypatch.setattr("transferlab.plots.save_figure", lambda fig, out: (axes_seen.extend(fig.axes), plt.close(fig)))
    plots.transfer_figure(table, tmp_path / "t.png")
    line = next(ln for ln in axes_seen[0].get_lines() if ln.get_label() == "baseB (mean)")
    base_b = table[(table.treatment == "base") & (table.target == "B")].top1.mean()
    assert line.get_ydata()[0] == pytest.approx(base_b)


def test_a_pretrained_source_is_drawn_in_figures_2_and_3_and_in_the_plot_tables(tmp_path, monkeypatch):
    """PnB / PnB+ (the MobileNet study's "AnB": n units of the ImageNet net) beside the treatments."""
    import matplotlib.pyplot as plt

    raw = tiny_params(
        **{
            "model.name": "resnet18",
            "analysis.decaf_units": [4, 5],
            "pretrained.weights": ["IMAGENET1K_V1"],
            "transfer.layers": [1, 3],
        }
    )
    specs = planned_runs(parse_params(raw))
    values = {"PnB": 0.7, "PnB+": 0.75}
    _write_metrics(tmp_path, specs, lambda spec: values.get(spec.treatment) or _value(spec))
    table = agg.tidy_table(specs, read_runs(specs, Layout(tmp_path)))
    axes_seen = []
    monkeypatch.setattr("transferlab.plots.save_figure", lambda fig, out: (axes_seen.extend(fig.axes), plt.close(fig)))
    plots.relative_figure(table, tmp_path / "r.png")
    labels = axes_seen[0].get_legend_handles_labels()[1]
    assert {"PnB, pretrained net", "PnB+, pretrained net"} <= set(labels), labels
    axes_seen.clear()
    plots.transfer_figure(table, tmp_path / "t.png")
    assert {"PnB", "PnB+"} <= {t.get_text() for t in axes_seen[0].get_legend().get_texts()} | set(
        axes_seen[0].get_legend_handles_labels()[1]
    )
    relative = agg.plot_data(table, specs, [{} for _ in specs])["transfer_relative.csv"]
    pnb = relative[relative.series == "PnB+, random splits (similar)"]
    assert list(pnb.n) == [1, 3] and pnb.top1_minus_base.tolist() == pytest.approx([0.15, 0.15])


def test_the_size_study_reads_its_runs_and_draws_the_papers_points_with_chance(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from transferlab.runs import SizeRun
    from transferlab.studies.size.report import build, paper_points

    runs = [SizeRun(k, r) for k in (2, 10) for r in (0, 1)]
    for run in runs:
        path = Layout(tmp_path).metrics(run)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"topk_mean_top1": 0.1 * run.images_per_class + 0.01 * run.replicate, "classes": 8}))
    report = build(parse_params(tiny_params()), Layout(tmp_path), runs)
    assert report.headline == {"runs": 4, "top1_i2": pytest.approx(0.205), "top1_i10": pytest.approx(1.005)}
    assert (report.table.classes == 8).all() and (report.table.chance == 1 / 8).all()
    paper = paper_points()
    assert len(paper) == 12 and paper[paper.images_per_class.between(5, 100)].top1.eq(0.0011).all()  # chance, shown
    data = report.plot_data["size.csv"]
    assert set(data.series) == {"this study", "the paper (ImageNet, 1000 classes)"} and len(data) == 2 + 12
    axes_seen = []
    monkeypatch.setattr("transferlab.plots.save_figure", lambda fig, out: (axes_seen.extend(fig.axes), plt.close(fig)))
    report.figures["size.png"](tmp_path / "size.png")
    ax = axes_seen[0]
    assert ax.get_xscale() == "log" and "chance (this study)" in ax.get_legend_handles_labels()[1]
    assert "a budget in epochs" in ax.get_title()  # (these runs say no budget: written before size.budget)
    empty = build(parse_params(tiny_params()), Layout(tmp_path), [])
    assert empty.figures["size.png"] == "not run: size.images_per_class is []" and empty.headline == {"runs": 0}


def test_the_take_home_table_says_what_transfer_buys_over_scratch_paired_by_split():
    """Each strategy minus the scratch net (no transfer) of the same split, replicate and data
    volume: an interval from 3 pairs, none from 1; scratch never wins a cell of the lecture's table."""
    from transferlab.runs import StrategyRun
    from transferlab.studies.strategies.report import strategy_table

    top1 = {("classifier", 10): 0.40, ("classifier", "all"): 0.60, ("scratch", 10): 0.90, ("scratch", "all"): 0.50}
    runs, metrics = [], []
    for split, shift in (("0", 0.0), ("1", 0.02), ("2", 0.04), ("mn", 0.0)):
        for (name, k), value in top1.items():
            runs.append(StrategyRun(split, name, k, 0, 0, "none" if name == "scratch" else "A"))
            metrics.append({"topk_mean_top1": value + (shift if name == "classifier" else 0.0)})
    text = take_home(strategy_table(runs, metrics))
    table, gains = text.split("## What transfer buys")
    assert "**classifier** 0.420" in table and "scratch" not in table  # scratch (0.90) is no strategy
    rows = [line for line in gains.splitlines() if line.startswith("| classifier |")]
    assert len(rows) == 1
    cells = rows[0].split(" | ")[1:]
    # similar tasks (splits 0, 1, 2): 0.42 - 0.90 and 0.62 - 0.50 on average, 3 pairs each, an interval
    assert cells[0] == "-0.480 [-0.530, -0.430] (3 pair(s))"
    assert cells[1] == "+0.120 [+0.070, +0.170] (3 pair(s))"
    # different tasks (split mn alone): one pair, no interval
    assert cells[2] == "-0.500 (interval n/a: 1 value) (1 pair(s))"
    assert "similar, 10 images per class: 0.900" in gains
    transfer = [(r, m) for r, m in zip(runs, metrics) if r.source != "none"]
    no_baseline = take_home(strategy_table(*zip(*transfer)))
    assert "No transfer: not run (strategies.baselines is [])" in no_baseline


def test_a_run_with_a_validation_part_reports_test_top1_at_its_best_validation_and_says_so(tmp_path, monkeypatch):
    """Selecting on the test set one reports is optimistic: a validated run's top-1 is its test
    top-1 at the best validation evaluation, in the grid, strategies and size tables alike, and
    the figure and take-home file name the statistic; a run without a validation part keeps the
    paper's mean of the k best test evaluations, named as such; the run's log line names both."""
    import matplotlib.pyplot as plt

    from transferlab.cli import reported_line
    from transferlab.runs import SizeRun, StrategyRun
    from transferlab.studies.size.report import size_table
    from transferlab.studies.strategies.report import strategy_table

    validated = {"topk_mean_top1": 0.9, "test_top1_at_best_val": 0.7, "final_top1": 0.75, "classes": 8}
    plain = {"topk_mean_top1": 0.8, "final_top1": 0.7, "classes": 8}
    specs = planned_runs(parse_params(tiny_params()))
    grid = agg.tidy_table(specs, [validated] * len(specs))
    assert (grid.top1 == 0.7).all() and (grid.statistic == "test_top1_at_best_val").all()
    axes_seen = []
    monkeypatch.setattr("transferlab.plots.save_figure", lambda fig, out: (axes_seen.extend(fig.axes), plt.close(fig)))
    plots.transfer_figure(grid, tmp_path / "t.png")
    assert "test top-1 at the best validation evaluation" in axes_seen[0].get_ylabel()
    runs = [StrategyRun("0", "classifier", 5, 0, 0), StrategyRun("0", "classifier", "all", 0, 0)]
    strategies = strategy_table(runs, [validated, plain])
    assert list(strategies.top1) == [0.7, 0.8] and list(strategies.statistic) == [
        "test_top1_at_best_val",
        "topk_mean_top1",
    ]
    assert "where a run validated, else the mean of its k best" in take_home(strategies).splitlines()[0]
    sizes = size_table([SizeRun(5, 0)], [plain])
    assert list(sizes.top1) == [0.8] and list(sizes.statistic) == ["topk_mean_top1"]
    assert reported_line(validated) == (
        "final test top-1 0.7500; reported top-1 0.7000 (test top-1 at the best validation evaluation)"
    )
    assert reported_line(plain).endswith("reported top-1 0.8000 (mean of the k best test evaluations)")
