"""CKA, LogME, LEEP, H-score and linear probes against direct computations and hand values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal, ortho_group

from transferlab.analysis.cka import cka_matrix, hsic1, linear_cka
from transferlab.analysis.estimates import h_score, leep, logme
from transferlab.analysis.probes import probe_top1

rng = np.random.default_rng(0)


def test_cka_of_a_representation_with_itself_is_one():
    x = rng.normal(size=(200, 30))
    assert linear_cka(x, x, batch_size=50) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling():
    x, y = rng.normal(size=(120, 20)), rng.normal(size=(120, 15))
    y = y + x[:, :15]  # related representations
    q = ortho_group.rvs(20, random_state=1)
    base = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(3.7 * x, 0.2 * y) == pytest.approx(base, abs=1e-10)
    assert 0 < base < 1


def test_unbiased_hsic_matches_a_direct_float64_computation():
    """HSIC_1 written out with explicit sums over index tuples (Song et al. 2012, Eq. 5)."""
    x, y = rng.normal(size=(9, 4)), rng.normal(size=(9, 3))
    k, l = x @ x.T, y @ y.T  # noqa: E741
    n = len(k)
    kt, lt = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
    term1 = sum(kt[i, j] * lt[j, i] for i in range(n) for j in range(n))
    term2 = (
        sum(kt[i, j] for i in range(n) for j in range(n))
        * sum(lt[i, j] for i in range(n) for j in range(n))
        / ((n - 1) * (n - 2))
    )
    term3 = 2 / (n - 2) * sum(kt[i, j] * lt[j, m] for i in range(n) for j in range(n) for m in range(n))
    assert hsic1(k, l) == pytest.approx((term1 + term2 - term3) / (n * (n - 3)), rel=1e-12)


def test_minibatch_cka_approaches_the_biased_full_batch_value_on_large_samples():
    x = rng.normal(size=(4000, 10))
    y = x @ rng.normal(size=(10, 8)) + rng.normal(size=(4000, 8))
    xc, yc = x - x.mean(0), y - y.mean(0)
    biased = np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert linear_cka(x, y, batch_size=1000) == pytest.approx(biased, abs=0.02)
    assert cka_matrix([x, y], [x]).shape == (2, 1)


def _evidence(f: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """log p(y | F, alpha, beta) of the Bayesian linear model, directly: y ~ N(0, I/beta + F F^T/alpha)."""
    cov = np.eye(len(y)) / beta + f @ f.T / alpha
    return multivariate_normal(np.zeros(len(y)), cov).logpdf(y)


def test_logme_equals_the_directly_maximised_evidence():
    f = rng.normal(size=(40, 5))
    labels = (f[:, 0] + 0.5 * rng.normal(size=40) > 0).astype(int)
    expected = []
    for k in (0, 1):
        y = (labels == k).astype(float)
        best = minimize(
            lambda p: -_evidence(f, y, np.exp(p[0]), np.exp(p[1])),
            x0=[0.0, 0.0],
            method="Nelder-Mead",
            options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000},
        )
        expected.append(-best.fun / len(y))
    assert logme(f, labels) == pytest.approx(np.mean(expected), abs=1e-4)


def test_logme_ranks_informative_features_above_noise():
    labels = rng.integers(0, 3, 300)
    informative = np.eye(3)[labels] + 0.1 * rng.normal(size=(300, 3))
    assert logme(informative, labels) > logme(rng.normal(size=(300, 3)), labels)


def test_leep_on_a_hand_computed_case():
    theta = np.array([[0.8, 0.2], [0.4, 0.6]])
    y = np.array([0, 1])
    # P(y, z) = theta row of each sample / n: P(0, .) = (0.4, 0.1), P(1, .) = (0.2, 0.3)
    # P(z) = (0.6, 0.4); P(y | z): P(0|0) = 2/3, P(0|1) = 1/4, P(1|0) = 1/3, P(1|1) = 3/4
    # sample 0: 2/3 * 0.8 + 1/4 * 0.2 = 0.58333...; sample 1: 1/3 * 0.4 + 3/4 * 0.6 = 0.58333...
    p0 = 2 / 3 * 0.8 + 1 / 4 * 0.2
    p1 = 1 / 3 * 0.4 + 3 / 4 * 0.6
    assert leep(theta, y) == pytest.approx((np.log(p0) + np.log(p1)) / 2, rel=1e-12)


def test_h_score_on_a_hand_computed_case():
    # f = 0, 2, 4, 6 with labels 0, 0, 1, 1: var(f) = 5, class means 1, 1, 5, 5 with variance 4
    assert h_score(np.array([[0.0], [2.0], [4.0], [6.0]]), np.array([0, 0, 1, 1])) == pytest.approx(0.8, rel=1e-12)
    # a second dimension with class means 0 but correlated with the first: cov(f) = [[5, -1], [-1, 1]],
    # inverse [[1, 1], [1, 5]] / 4, cov of class means [[4, 0], [0, 0]]: trace = 4 / 4 = 1
    f = np.array([[0.0, 1.0], [2.0, -1.0], [4.0, 1.0], [6.0, -1.0]])
    assert h_score(f, np.array([0, 0, 1, 1])) == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("kind", ["logreg", "svm"])
def test_probes_reach_one_on_linearly_separable_features(kind):
    y = np.repeat(np.arange(3), 30)
    centres = np.array([[5, 0, 0, 1], [0, 5, 0, 1], [0, 0, 5, 1]], dtype=float)
    x = centres[y] + 0.3 * rng.normal(size=(90, 4))
    assert probe_top1(x[::2], y[::2], x[1::2], y[1::2], kind, c=10.0) == 1.0


def test_probes_add_their_mean_per_class_accuracy_where_bs_test_classes_are_unbalanced():
    from transferlab.analysis.probes import features, fit_probe
    from transferlab.analysis.stage import unit_values
    from transferlab.config import AnalysisConfig

    y = np.repeat(np.arange(3), 30)
    x = np.eye(3)[y] + 0.9 * rng.normal(size=(90, 3))  # overlapping classes: some mistakes
    test = np.r_[0:20, 30:35, 60:90]  # 20, 5 and 30 test images
    train = np.setdiff1d(np.arange(90), test)
    cfg = AnalysisConfig(probe_c=1.0)
    values = unit_values(x[train], y[train], x[test], y[test], None, None, None, None, cfg)
    hits = fit_probe(x[train], y[train], "logreg", 1.0).predict(features(x[test])) == y[test]
    by_hand = np.mean([hits[y[test] == c].mean() for c in range(3)])
    assert values["probe_logreg_mean_class_top1"] == pytest.approx(by_hand) and values["probe_logreg"] == hits.mean()
    assert "probe_svm_mean_class_top1" in values
    balanced = unit_values(x[::2], y[::2], x[1::2], y[1::2], None, None, None, None, cfg)
    assert not [k for k in balanced if k.endswith("mean_class_top1")]


def test_source_rows_take_leep_from_a_probe_per_unit_or_from_a_foreign_nets_own_head():
    import torch

    from transferlab.analysis.extract import source_arrays
    from transferlab.analysis.stage import source_rows, unit_tasks
    from transferlab.config import AnalysisConfig
    from transferlab.models import create_model

    torch.manual_seed(0)
    net = create_model("convnet8", 5, width=0.0625, image_size=16)
    x = torch.randint(0, 255, (24, 3, 16, 16), dtype=torch.uint8)
    y = np.repeat(np.arange(3), 8)
    mean, std = torch.full((1, 3, 1, 1), 0.5), torch.full((1, 3, 1, 1), 0.25)
    b_data = (x, y, x[::2], y[::2])  # test part balanced: 4 images of each class
    own = source_arrays(net, mean, std, b_data, (x, y), torch.device("cpu"))
    assert [own[f"b_test_{n}"].shape[0] for n in range(1, 8)] == [12] * 7 and own["own_train_7"].shape == own[
        "b_train_7"
    ].shape
    every = {0: np.arange(24)}  # one data draw: every training image
    own_rows, _ = source_rows(*unit_tasks("A", own, 7, [], [0, 0], every), AnalysisConfig())
    assert sum(r["method"] == "leep" for r in own_rows) == 7 and [r["n"] for r in own_rows[::5]] == list(range(1, 8))
    foreign, _ = source_rows(
        *unit_tasks("P", source_arrays(net, mean, std, b_data, None, torch.device("cpu")), 7, [6, 7], [0, 0], every),
        AnalysisConfig(),
    )
    leep_rows = [r for r in foreign if r["method"] == "leep"]
    assert [r["n"] for r in leep_rows] == [7] and leep_rows[0]["value"] < 0  # a log-likelihood
    assert {r["method"] for r in foreign} == {"probe_logreg", "probe_svm", "logme", "hscore", "leep"} | {
        "probe_logreg_dropout",
        "probe_svm_dropout",
    }
    assert sorted(r["n"] for r in foreign if r["method"].endswith("_dropout")) == [6, 6, 7, 7]  # the DeCAF units only


def test_decafs_dropout_drops_half_of_each_copy_and_keeps_the_expected_value():
    from transferlab.analysis.probes import dropout_copies

    x = rng.normal(size=(200, 50)).astype(np.float32)
    y = np.arange(200) % 4
    dropped, dropped_y = dropout_copies(x, y, 3, np.random.default_rng(0))
    assert dropped.shape == (600, 50) and dropped.dtype == np.float32 and list(dropped_y[:4]) == [0, 1, 2, 3]
    assert list(dropped_y[200:204]) == [0, 1, 2, 3]  # each copy in the original order
    zeroed = (dropped == 0).mean()
    assert 0.47 < zeroed < 0.53
    kept = dropped[:200] != 0
    assert np.allclose(dropped[:200][kept], 2 * x[kept])  # inverted dropout: the rest doubled
    assert not np.array_equal(dropped[:200] == 0, dropped[200:400] == 0)  # a fresh mask per copy


def test_the_analysis_reads_the_feature_cache_without_torch():
    import subprocess
    import sys

    code = "import sys, transferlab.analysis.stage; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_features_names_missing_checkpoints_in_one_line_and_writes_nothing(tmp_path):
    """At once, before waiting for cores: every core is leased by this test meanwhile."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import torch
    import yaml

    from transferlab.devices import cpu_threads

    from conftest import tiny_params

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    command = Path(sys.executable).parent / "transferlab"
    locks, threads = tmp_path / "locks", torch.get_num_threads()
    with cpu_threads(len(os.sched_getaffinity(0)), torch.device("cpu"), locks):
        proc = subprocess.run(
            [str(command), "features", "--device", "cpu", "feat"],
            cwd=tmp_path,
            env={**os.environ, "TRANSFERLAB_LOCK_DIR": str(locks)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    torch.set_num_threads(threads)  # (this worker's own count again)
    assert proc.returncode == 2 and proc.stderr.strip().startswith(
        "error: features: 13 checkpoint(s) missing, e.g. data/models/s0/baseA/r0.pt"
    )
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "feat").exists()


def test_cnnaug_copies_are_cropped_flipped_and_rotated():
    import numpy as np
    import torch

    from transferlab.analysis.extract import augmented
    from transferlab.data.batches import random_rotate

    x = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(random_rotate(x, 0.0, gen), x)  # no angle: the image itself
    square = torch.zeros(1, 1, 15, 15, dtype=torch.uint8)
    square[..., 7, 2:13] = 255  # a horizontal bar through the centre
    turned = random_rotate(square.expand(64, 1, 15, 15), 90.0, gen)
    assert turned.dtype == torch.uint8 and turned[:, 0, 7, 7].min() == 255  # the centre stays put
    assert len({tuple(t.flatten().tolist()) for t in turned}) > 10  # each image its own angle
    plain, y = augmented(x, np.arange(6), 2, 2, seed=0)
    rotated, _ = augmented(x, np.arange(6), 2, 2, seed=0, degrees=10.0)
    assert plain.shape == rotated.shape == (18, 3, 16, 16) and list(y) == list(range(6)) * 3
    assert torch.equal(plain[:6], x) and torch.equal(rotated[:6], x) and not torch.equal(plain[6:], rotated[6:])


def test_the_signed_power_transform_feeds_the_probes():
    import numpy as np

    from transferlab.analysis.probes import probe_top1, signed_power

    assert signed_power(np.array([-4.0, 0.0, 9.0]), 0.5).tolist() == [-2.0, 0.0, 3.0]
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = rng.normal(size=(60, 8)) + 3 * np.eye(3, 8)[y]
    assert probe_top1(x, y, x, y, "logreg", 10.0, power=0.5) > 0.9


def test_features_refuses_a_split_id_that_params_do_not_ask_for(tmp_path):
    """The split id becomes part of paths: ../../x must not reach outside data/."""
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    from conftest import tiny_params

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    command = Path(sys.executable).parent / "transferlab"
    proc = subprocess.run(
        [str(command), "features", "--split", "../../x", "--device", "cpu", "feat"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.startswith(
        "error: --split ../../x --replicate 0: not a split and replicate"
    )
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "feat").exists()


def test_data_draws_give_the_decaf_table_its_interval_and_leave_the_first_draw_alone(tmp_path):
    """analysis.data_draws: the feature cache holds the images of every draw once, with each
    draw's rows; every probe and estimate is that of the first draw alone, as with one draw; the
    DeCAF units are probed again on each further draw (other images, other values), and with
    three draws the DeCAF table gives an interval."""
    import json

    import yaml

    from transferlab.analysis.report import analysis_table, decaf_table, draw_table
    from transferlab.config import load_params

    from conftest import project, tiny_params

    off = {"transfer.layers": [], "binary.betas": [], "strategies.names": [], "strategies.cut_layers": []}
    params = tiny_params(**off, **{"analysis.max_train_per_class": 8, "analysis.decaf_units": [6, 7]})
    run = project(tmp_path, params, "0")
    for half in "AB":
        run("train", f"s0/base{half}/r0", "--device", "cpu", "--root", str(tmp_path))

    def analysis(draws: list[int]) -> tuple[dict, object]:
        params["analysis"]["data_draws"] = draws
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        cache, out = tmp_path / f"features{len(draws)}", tmp_path / f"analysis{len(draws)}.json"
        run("features", str(cache), "--split", "0", "--device", "cpu", "--root", str(tmp_path))
        run("analyze", str(cache), str(out))
        return json.loads(out.read_text()), cache

    one, _ = analysis([0])
    three, cache = analysis([0, 4, 9])
    with np.load(cache / "draws.npz") as draws, np.load(cache / "baseA.npz") as arrays:
        rows = {d: draws[f"draw_{d}"] for d in (0, 4, 9)}
        assert all(len(r) == 4 * 8 for r in rows.values())  # 8 images of each of B's 4 classes
        assert len(arrays["b_train_y"]) == len(set().union(*(set(r) for r in rows.values()))) > 4 * 8
    assert three["rows"] == one["rows"] and one["draw_rows"] == []
    decaf = {(r["source"], r["n"], r["draw"], r["method"]) for r in three["draw_rows"]}
    assert {(s, n, d) for s, n, d, _ in decaf} == {(s, n, d) for s in "AB" for n in (6, 7) for d in (4, 9)}
    first = {(r["source"], r["n"]): r["value"] for r in three["rows"] if r["method"] == "probe_svm"}
    again = {
        (r["source"], r["n"]): r["value"] for r in three["draw_rows"] if r["method"] == "probe_svm" and r["draw"] == 9
    }
    assert first.keys() >= again.keys() and any(first[k] != v for k, v in again.items())
    p = load_params(tmp_path / "params.yaml")
    path_of = lambda split, rep: tmp_path / "analysis3.json"  # noqa: E731
    table = decaf_table(analysis_table(p, path_of), draw_table(p, path_of), p)
    assert "3 draws of 8 training images" in table and "interval n/a" not in table, table
