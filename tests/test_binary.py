"""The binary-partition study: partitions, the loss, pairing with the plain net, transfer to B."""

from __future__ import annotations

import pytest
import torch
import yaml
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.config import DataConfig, SyntheticConfig, TrainConfig
from transferlab.data.dataset import prepare_synthetic, select_classes
from transferlab.errors import InputError
from transferlab.models import create_model
from transferlab.studies.binary.train import BinaryHeadsNet, objective, partitions
from transferlab.train import FitOptions, ParamGroup, fit
from transferlab.transfer import param_groups

from conftest import project, tiny_params


def test_partitions_are_balanced_deterministic_and_differ_across_seeds():
    t = partitions(10, 3, seed=0)
    assert t.shape == (3, 10) and (t.sum(1) == 5).all()
    assert torch.equal(t, partitions(10, 3, seed=0))
    assert not torch.equal(t, partitions(10, 3, seed=1))
    assert not torch.equal(t[0], t[1])  # each head its own partition
    assert partitions(7, 1, 0, equal_halves=False).sum() == 3
    with pytest.raises(InputError, match=r"binary.equal_halves: found true, .*7 classes cannot be halved"):
        partitions(7, 1, 0)


def test_loss_is_the_weighted_sum_of_classifier_and_mean_binary_cross_entropy():
    torch.manual_seed(0)
    body = create_model("convnet8", 4, width=0.0625, image_size=16).eval()
    table = torch.tensor([[0, 0, 1, 1], [0, 1, 0, 1]])
    net = BinaryHeadsNet(body, table).eval()
    x, y = torch.randn(6, 3, 16, 16), torch.tensor([0, 1, 2, 3, 2, 0])
    loss, logits = net.loss(x, y, beta=0.3)
    f = x
    for layer in body.layers:
        f = layer(f)
    ce = torch.nn.functional.cross_entropy(body.head(f), y)
    b0 = torch.nn.functional.cross_entropy(net.heads[0](f), torch.tensor([0, 0, 1, 1, 1, 0]))
    b1 = torch.nn.functional.cross_entropy(net.heads[1](f), torch.tensor([0, 1, 0, 1, 0, 0]))
    assert torch.allclose(loss, 0.7 * ce + 0.3 * (b0 + b1) / 2)
    assert torch.equal(logits, net(x))


def _task():
    ds = prepare_synthetic(
        DataConfig(image_size=16, synthetic=SyntheticConfig(num_classes=8, train_per_class=16, test_per_class=4))
    )
    return select_classes(ds, [0, 1, 2, 3])


def test_beta_zero_trains_exactly_like_the_plain_net():
    task, cfg = _task(), TrainConfig(epochs=2, batch_size=16)
    opts = FitOptions(torch.device("cpu"), seed=5)

    torch.manual_seed(5)
    plain = create_model("convnet8", 4, width=0.0625, image_size=16)
    fit(plain, task, cfg, param_groups(plain, 0, 1.0), opts)

    torch.manual_seed(5)
    body = create_model("convnet8", 4, width=0.0625, image_size=16)
    net = BinaryHeadsNet(body, partitions(4, 2, 0))
    groups = [*param_groups(body, 0, 1.0), ParamGroup(list(net.heads.parameters()), 1.0, "heads")]
    fit(net, task, cfg, groups, FitOptions(torch.device("cpu"), seed=5, objective=objective(0.0, 0.0)))
    for (name, a), b in zip(plain.state_dict().items(), body.state_dict().values()):
        assert torch.equal(a, b), name

    torch.manual_seed(5)
    other = BinaryHeadsNet(create_model("convnet8", 4, width=0.0625, image_size=16), partitions(4, 2, 0))
    fit(other, task, cfg, groups_of(other), FitOptions(torch.device("cpu"), seed=5, objective=objective(0.5, 0.0)))
    assert not torch.equal(other.body.layers[0][0].weight, body.layers[0][0].weight)  # beta > 0 does change training


def groups_of(net: BinaryHeadsNet) -> list[ParamGroup]:
    return [*param_groups(net.body, 0, 1.0), ParamGroup(list(net.heads.parameters()), 1.0, "heads")]


def test_stages_drop_the_heads_and_fine_tune_with_the_configured_rates(tmp_path):
    run = project(tmp_path, tiny_params(**{"binary.frozen_units": [2], "binary.finetune.epochs": 2}), "0")
    run("train", "s0/binA_b0.5_h1_p0/r0", "--device", "cpu", "--root", str(tmp_path))
    state = torch.load(tmp_path / "data/models/s0/binA_b0.5_h1_p0/r0.pt", weights_only=True)
    assert not any("heads" in k or "partition" in k for k in state["state_dict"])
    a_prime = yaml.safe_load(open(tmp_path / "data/runs/binary/s0/binA_b0.5_h1_p0/r0/metrics.json"))
    assert a_prime["heads"] == 1 and all(
        0 <= r["binary_test_top1"] <= 1 for r in a_prime["history"]
    )  # the heads' own test top-1
    assert (tmp_path / "data/runs/binary/s0/binA_b0.5_h1_p0/r0/live/plots/metrics/binary_test_top1.tsv").is_file()
    run("train", "s0/binB_b0.5_h1_p0_f2/r0", "--device", "cpu", "--root", str(tmp_path))
    metrics = yaml.safe_load(open(tmp_path / "data/runs/binary/s0/binB_b0.5_h1_p0_f2/r0/metrics.json"))
    assert (
        metrics["run_id"] == "s0/binB_b0.5_h1_p0_f2/r0"
        and metrics["frozen"] == 2
        and "test_top1_at_best_val" in metrics
    )
    assert metrics["train"]["epochs"] == 2 and metrics["train"]["patience"] == 2  # the study's overrides
    tuned = torch.load(tmp_path / "data/models/s0/binB_b0.5_h1_p0_f2/r0.pt", weights_only=True)["state_dict"]
    # frozen units stayed the A' net's, fine-tuned ones moved
    assert torch.equal(tuned["layers.0.0.weight"], state["state_dict"]["layers.0.0.weight"])
    assert not torch.equal(tuned["layers.2.0.weight"], state["state_dict"]["layers.2.0.weight"])


def test_fine_tuning_groups_put_the_body_at_the_reduced_rate():
    from transferlab.transfer import build_treatment

    src, model = (
        create_model("convnet8", 4, width=0.0625, image_size=16),
        create_model("convnet8", 3, width=0.0625, image_size=16),
    )
    build_treatment(model, model.depth, src, finetune=True)
    model.freeze(range(2))
    groups = {g.lr_factor: g for g in param_groups(model, model.depth, 0.1)}
    assert set(groups) == {0.1, 1.0}
    head = {id(p) for p in model.head.parameters()}
    assert {id(p) for p in groups[1.0].params} == head
    frozen = {id(p) for i in range(2) for p in model.layers[i].parameters()}
    assert not frozen & {id(p) for g in groups.values() for p in g.params}


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"binary.betas": [0.0, 1.5]}, "binary.betas: found [0.0, 1.5], entry 1.5 is outside [0, 1]"),
        ({"binary.betas": [0.5]}, "binary.betas: found [0.5], the list must include 0"),
        ({"binary.betas": [0, 0.5]}, "binary.betas: found [0, 0.5], entry 0 must be written with a decimal point"),
        ({"binary.heads": [0]}, "binary.heads: found [0], entries must be >= 1"),
        ({"binary.heads": 1}, "binary.heads: found 1, Input should be a valid list"),
        (
            {"data.synthetic.num_classes": 6},
            "binary.equal_halves: found True, allowed: false, or an even class count in A (A has 3 classes",
        ),
        ({"binary.frozen_units": [8]}, "binary.frozen_units[0]: found 8, allowed: 0..7 for convnet8"),
    ],
)
def test_bad_binary_values_give_one_line(tmp_path, overrides, expected):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(**overrides)))
    result = CliRunner().invoke(app, ["plan", "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 2 and expected in result.output and len(result.output.strip().splitlines()) == 1, (
        result.output
    )


def test_head_counts_are_a_sweep_in_the_run_ids(tmp_path, monkeypatch):
    """binary.heads is a list: each count has its own A' nets (and beta = 0 control), with that
    many heads, and the tables, headline and figures keep the counts apart."""
    from transferlab.config import parse_params
    from transferlab.runs import planned_binary_runs
    from transferlab.studies.binary.report import binary_curves, binary_headline, binary_table, curves_figure

    params = tiny_params(**{"binary.heads": [1, 3], "binary.betas": [0.0, 0.5]})
    ids = [str(r) for r in planned_binary_runs(parse_params(params))]
    assert ids == [
        "s0/binA_b0.0_h1_p0/r0",
        "s0/binB_b0.0_h1_p0_f0/r0",
        "s0/binA_b0.0_h3_p0/r0",
        "s0/binB_b0.0_h3_p0_f0/r0",
        "s0/binA_b0.5_h1_p0/r0",
        "s0/binB_b0.5_h1_p0_f0/r0",
        "s0/binA_b0.5_h3_p0/r0",
        "s0/binB_b0.5_h3_p0_f0/r0",
    ]
    run = project(tmp_path, params, "0")
    run("train", "s0/binA_b0.5_h3_p0/r0", "--device", "cpu", "--root", str(tmp_path))
    metrics = yaml.safe_load(open(tmp_path / "data/runs/binary/s0/binA_b0.5_h3_p0/r0/metrics.json"))
    assert metrics["heads"] == 3 and "binary_test_top1" in metrics["history"][-1]

    runs = planned_binary_runs(parse_params(params))
    fake = [
        {
            "topk_mean_top1": 0.5 + 0.1 * r.beta * (r.frozen is not None) - 0.01 * r.heads,
            "params": {},
            "history": [{"epoch": e, "test_top1": 0.3 + 0.1 * e, "binary_test_top1": 0.6 + 0.1 * e} for e in (1, 2)],
        }
        for r in runs
    ]
    table = binary_table(runs, fake)
    headline = binary_headline(table)
    assert set(headline) == {"beta_0p5_h1", "beta_0p5_h3"} and headline["beta_0p5_h3"]["b_gain"] == pytest.approx(0.05)
    curves = binary_curves(runs, fake)
    assert len(curves) == 4 * 2 and set(curves.heads) == {1, 3}  # the A' nets' evaluations
    curves_figure(curves, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"

    seen = []
    monkeypatch.setattr(
        "transferlab.plots.save_figure", lambda fig, out: seen.extend(ax.get_title() for ax in fig.axes)
    )
    curves_figure(
        curves.astype({"heads": float}), tmp_path / "c.png"
    )  # as read back from results.parquet, beside NaN columns
    assert seen[:2] == ["1 binary head (2 A' nets)", "3 binary heads (2 A' nets)"]


def test_each_split_has_its_own_look_in_the_per_split_panel():
    """20 random splits and mn: no two alike, and no random split in the colour of a named kind
    (split 1 once took matplotlib's orange, next to mn's)."""
    import pandas as pd

    from transferlab.plots import KIND_COLORS
    from transferlab.studies.binary.report import split_looks

    df = pd.DataFrame({"split": [*map(str, range(20)), "mn"], "split_kind": ["random"] * 20 + ["mn"]})
    looks = split_looks(df)
    assert len({(tuple(c) if not isinstance(c, str) else c, m) for c, m in looks.values()}) == 21
    from matplotlib.colors import to_hex

    named = {to_hex(c) for c in KIND_COLORS.values()} - {KIND_COLORS["random"]}
    assert looks["mn"][0] == KIND_COLORS["mn"] and not {to_hex(looks[str(i)][0]) for i in range(20)} & named


def test_both_sides_of_the_comparison_use_one_statistic():
    """A' error on A and error on B: the test top-1 at the best validation evaluation where a
    run validated, else the mean of its k best, on both sides alike."""
    from transferlab.runs import BinaryRun
    from transferlab.studies.binary.report import binary_table

    a, b = BinaryRun("0", 0.5, 0), BinaryRun("0", 0.5, 0, frozen=0)
    validated = {"topk_mean_top1": 0.9, "test_top1_at_best_val": 0.7}
    table = binary_table([a, b], [validated, {"topk_mean_top1": 0.8, "test_top1_at_best_val": 0.6}])
    assert table.a_top1.tolist() == [0.7, 0.7] and table.b_top1.iloc[1] == 0.6
    plain = binary_table([a, b], [{"topk_mean_top1": 0.9}, {"topk_mean_top1": 0.8}])
    assert plain.a_top1.tolist() == [0.9, 0.9] and plain.b_top1.iloc[1] == 0.8


@pytest.mark.parametrize("name", ["convnet8", "wrn", "densenet_bc", "mobilenet_v1", "resnet18"])
def test_binary_heads_read_exactly_the_classifiers_input(name):
    """Beside the classifier, for every architecture: on WRN and DenseNet-BC the heads read the
    features after the final BN-ReLU and pooling, as the classifier does, not the last unit's."""
    import torch

    from transferlab.models import create_model
    from transferlab.studies.binary.train import BinaryHeadsNet, classifier_layer, partitions

    opts = {"wrn": {"depth": 10, "widen": 1}, "densenet_bc": {"depth": 10, "growth": 4}}.get(name, {})
    body = create_model(name, 6, image_size=32, **opts)
    net = BinaryHeadsNet(body, partitions(6, 2, seed=0)).eval()
    seen = {}
    classifier_layer(body.head).register_forward_pre_hook(lambda m, a: seen.setdefault("classifier", a[0].clone()))
    net.heads[1].register_forward_pre_hook(lambda m, a: seen.setdefault("head", a[0].clone()))
    x = torch.randn(4, 3, 32, 32)
    net.loss(x, torch.tensor([0, 1, 2, 3]), beta=0.5)
    assert seen["classifier"].shape == (4, classifier_layer(body.head).in_features)
    assert torch.equal(seen["head"], seen["classifier"])
    seen.clear()
    net.head_view(1)(x)  # the heads' evaluation path reads the same features
    assert torch.equal(seen["head"], seen["classifier"])
