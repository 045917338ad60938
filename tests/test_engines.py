"""End to end: the real `dvc repro`, `dvc exp run` and `snakemake` on a shrunken configuration
in temporary git repositories. Both engines run the same graph; after one, the other has
nothing to do."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, tiny_params
from pipeline import make_repo, sh, stages_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory) -> tuple[Path, str]:
    repo = make_repo(tmp_path_factory.mktemp("engines") / "dvc", tiny_params())
    return repo, sh(repo, "dvc", "repro")


def test_dvc_repro_makes_the_figure_table_and_metrics(dvc_repo):
    repo, log = dvc_repo
    # download, settings, prepare, split, bases, 4 treatments x 2 layers, control x 2, 2 A' nets, 2 fine-tunings, 2 strategies,
    # 1 cut, features, analyze, aggregate, plot
    assert len(stages_run(log)) == 1 + 1 + 1 + 1 + 2 + 4 * 2 + 2 + 2 + 2 + 2 + 1 + 2 + 2
    figures = ("transfer", "transfer_relative", "binary_beta", "binary_tradeoff", "binary_curves", "probe", "cka", "estimates", "strategies", "cut")
    for fig in (f"{name}.png" for name in figures):
        assert (repo / "reports/figures" / fig).read_bytes()[:4] == b"\x89PNG"
    df = pd.read_parquet(repo / "reports/results.parquet")
    runs = df[~df.study.isin(["analysis", "binary_curves"])]
    assert len(runs) == 12 + 4 + 3
    assert set(runs.treatment) == {"base", "BnB", "AnB", "BnB+", "AnB+", "random", "binaryA", "binaryB", "strategy:classifier", "strategy:finetune_top", "cut"}
    assert "**similar**" in (repo / "reports/tables/take_home.md").read_text()
    assert "| 2 | conv2 |" in (repo / "reports/tables/cut.md").read_text()
    analysis = df[df.study == "analysis"]
    # per source (baseA, baseB, the A' net of beta 0.5) and unit: 2 probes and 3 estimates; CKA 7 x 7;
    # CKA to baseB for 10 transfer nets x 7 units
    assert len(analysis) == 3 * 7 * 5 + 7 * 7 + 10 * 7 and "A'0.5h1" in set(analysis.source)
    assert set(analysis.method) == {"probe_logreg", "probe_svm", "logme", "leep", "hscore", "cka", "cka_to_base"}
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    strings = [k for k, v in pd.json_normalize(metrics).iloc[0].items() if isinstance(v, str)]
    assert not strings, strings  # dvc exp show compares numbers
    assert "spearman_logme_vs_probe" in metrics["analysis"] and "b_gain_ci95_low" in metrics["binary"]["beta_0p5_h1"]
    assert {"base_top1", "anb_plus_gain", "anb_drop_top", "bnb_dip", "random_drop_top"} <= set(metrics)
    assert {"b_gain", "b_gain_ci95_low", "b_gain_count", "a_loss", "b_gain_by_kind", "b_gain_by_split"} <= set(metrics["binary"]["beta_0p5_h1"])
    assert metrics["binary"]["beta_0p5_h1"]["b_gain_ci95_low"] is None  # one pair: no interval
    run = json.loads((repo / "data/runs/s0/A7B+/r0/metrics.json").read_text())
    assert run["run_id"] == "s0/A7B+/r0" and run["params"]["transfer"]["layers"] == [1, 7] and run["git_revision"] != "unknown"
    assert (repo / "data/runs/s0/A7B+/r0/live/plots/metrics/test_top1.tsv").is_file()  # DVCLive, for dvc plots


def test_after_dvc_snakemake_has_nothing_to_do(dvc_repo):
    repo, _ = dvc_repo
    assert "Nothing to be done" in sh(repo, "snakemake", "-n")


def test_both_engines_see_the_same_jobs(dvc_repo):
    repo, _ = dvc_repo
    sys.path.insert(0, str(ROOT / "workflow"))
    from dvc_stages import rule_name

    dvc_names = sh(repo, "dvc", "stage", "list", "--name-only").split()
    rules = set(sh(repo, "snakemake", "--list-rules").split()) - {"all"}
    assert rules == {rule_name(n) for n in dvc_names}
    dry = sh(repo, "snakemake", "-n", "--forceall")
    assert f"total                  {len(dvc_names) + 1}" in re.sub(r"total\s+", "total                  ", dry)


def test_an_override_equal_to_the_shared_value_reruns_no_net(dvc_repo):
    """Stages see effective settings: spelling out `transfer.epochs` with the value it already
    takes from `train.epochs` changes the settings stage's params but not its outputs."""
    repo, _ = dvc_repo
    params = repo / "params.yaml"
    before = params.read_text()
    changed = yaml.safe_load(before)
    changed["transfer"]["epochs"] = changed["train"]["epochs"]
    try:
        params.write_text(yaml.safe_dump(changed))
        assert stages_run(sh(repo, "dvc", "repro")) == {"settings"}
    finally:
        params.write_text(before)
        sh(repo, "dvc", "repro", "settings")


def test_an_experiment_reruns_only_what_its_change_touches(dvc_repo):
    repo, _ = dvc_repo
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "results")
    log = sh(repo, "dvc", "exp", "run", "-S", "++transfer.epochs=2")  # ++: a key that params.yaml leaves to `train`
    ran = stages_run(log)
    # the analysis reruns too: it compares every transfer net with its base
    assert ran and all(s.startswith(("transfer@", "finetune@", "control@", "features@", "analyze@")) or s in ("settings", "aggregate", "plot") for s in ran), ran
    assert len([s for s in ran if "@" in s]) == 10 + 2
    shown = json.loads(sh(repo, "dvc", "exp", "show", "--json"))
    text = json.dumps(shown)
    assert '"epochs": 2' in text and "anb_plus_gain" in text and "base_top1" in text


def test_a_beta_sweep_experiment_trains_only_the_new_beta(dvc_repo):
    repo, _ = dvc_repo
    log = sh(repo, "dvc", "exp", "run", "-S", "binary.betas=[0.0,0.25]")
    ran = stages_run(log)
    assert {s for s in ran if "@" in s} == {"binary-base@0-0.25-1-0-0", "binary-finetune@0-0.25-1-0-0-0", "features@0-0", "analyze@0-0"}, ran
    text = json.dumps(json.loads(sh(repo, "dvc", "exp", "show", "--json")))
    assert "beta_0p25_h1" in text and "b_gain_by_split" in text


def test_a_probe_setting_reruns_the_analysis_on_the_feature_cache_only(dvc_repo):
    repo, _ = dvc_repo
    index = json.loads((repo / "data/features/s0/r0/index.json").read_text())
    names = [s["name"] for s in index["sources"]]  # baseA, baseB and the A' net of the beta > 0 in params
    assert names[:2] == ["A", "B"] and len(names) == 3 and names[2].startswith("A'") and len(index["transfer"]) == 10
    params = repo / "params.yaml"
    before = params.read_text()
    changed = yaml.safe_load(before)
    changed["analysis"]["probe_c"] = 1.0
    try:
        params.write_text(yaml.safe_dump(changed))
        assert set(json.loads(sh(repo, "dvc", "status", "--json"))) == {"analyze@0-0"}
    finally:
        params.write_text(before)


def test_adding_a_layer_trains_only_that_layers_nets(dvc_repo):
    repo, _ = dvc_repo
    log = sh(repo, "dvc", "exp", "run", "-S", "transfer.layers=[1,4,7]")
    trained = {s for s in stages_run(log) if s.startswith(("transfer@", "finetune@", "control@", "train-base@"))}
    assert trained == {"transfer@0-A-B-4-0", "transfer@0-B-B-4-0", "finetune@0-A-B-4-0", "finetune@0-B-B-4-0", "control@0-B-4-0"}, trained


def test_after_snakemake_dvc_status_is_clean(tmp_path):
    repo = make_repo(tmp_path / "smk", tiny_params())
    sh(repo, "snakemake", "--cores", "2", "--resources", "gpu=2")
    assert (repo / "reports/figures/transfer.png").is_file() and (repo / "reports/figures/binary_beta.png").is_file()
    assert "up to date" in sh(repo, "dvc", "status")
    assert "Nothing to be done" in sh(repo, "snakemake", "-n")
