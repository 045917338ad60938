"""Strategies freeze and train what they say; subsets are nested; the cut net and its costs."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from transferlab.config import DataConfig, SyntheticConfig, TrainConfig
from transferlab.data.dataset import prepare_synthetic, select_classes
from transferlab.data.dataset import task_subset as subset
from transferlab.models import create_model
from transferlab.studies.strategies.train import (
    CutNet,
    apply_strategy,
    flops_per_image,
    latency_per_image,
    parameter_count,
    peak_memory,
)
from transferlab.train import FitOptions, fit


def test_subsets_are_balanced_and_nested():
    ds = prepare_synthetic(
        DataConfig(image_size=16, synthetic=SyntheticConfig(num_classes=6, train_per_class=30, test_per_class=2))
    )
    task = select_classes(ds, [0, 2, 4])
    small, large = subset(task, 5, seed=1), subset(task, 12, seed=1)
    assert torch.bincount(small.train_y).tolist() == [5, 5, 5] and torch.bincount(large.train_y).tolist() == [
        12,
        12,
        12,
    ]
    rows = lambda t: {tuple(x.flatten()[:40].tolist()) for x in t.train_x}  # noqa: E731
    assert rows(small) <= rows(large)
    assert subset(task, "all", 1) is task


# (strategy, units that must stay unchanged, units that must change)
CASES = [
    ("classifier", range(7), []),
    ("extra_fc", range(7), []),
    ("finetune_top", range(5), [5, 6]),
    ("finetune_all", [], range(7)),
]


@pytest.mark.parametrize("name, fixed, moved", CASES)
def test_each_strategy_trains_exactly_the_units_it_says(name, fixed, moved):
    torch.manual_seed(0)
    ds = prepare_synthetic(
        DataConfig(image_size=16, synthetic=SyntheticConfig(num_classes=4, train_per_class=16, test_per_class=4))
    )
    task = select_classes(ds, [0, 1, 2, 3])
    model = create_model("convnet8", 4, width=0.0625, image_size=16)
    groups = apply_strategy(model, name, top_units=2, top_factor=0.1, lower_factor=0.01, extra_fc=[32])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, task, TrainConfig(epochs=1, batch_size=16), groups, FitOptions(torch.device("cpu"), seed=0))
    after = model.state_dict()
    changed = lambda i: any(not torch.equal(before[k], after[k]) for k in before if k.startswith(f"layers.{i}."))  # noqa: E731
    assert not any(changed(i) for i in fixed)  # parameters and BatchNorm statistics
    assert all(changed(i) for i in moved)
    assert {g.lr_factor for g in groups} == {
        "classifier": {1.0},
        "extra_fc": {1.0},
        "finetune_top": {1.0, 0.1},
        "finetune_all": {1.0, 0.1, 0.01},
    }[name]
    if name == "extra_fc":
        assert sum(isinstance(m, nn.Linear) for m in model.head.modules()) == 2


def test_cut_net_parameters_are_the_sum_of_its_parts():
    source = create_model("convnet8", 10, width=0.125)
    cut = CutNet(source, 3, num_classes=5)
    units = sum(parameter_count(layer) for layer in list(source.layers)[:3])
    assert parameter_count(cut) == units + source.widths[2] * 5 + 5
    assert cut(torch.zeros(2, 3, 32, 32)).shape == (2, 5)
    peak, how = peak_memory(cut, torch.zeros(4, 3, 32, 32))
    assert peak > 4 * parameter_count(cut) and how.startswith("cpu_estimate")


class _SlowStart(nn.Module):
    """Slow for its first calls (like cuDNN autotuning or lazy initialisation), fast after."""

    def __init__(self, slow_calls: int) -> None:
        super().__init__()
        self.calls, self.slow_calls = 0, slow_calls

    def forward(self, x):
        self.calls += 1
        time.sleep(0.2 if self.calls <= self.slow_calls else 0.001)
        return x


def test_latency_excludes_warm_up():
    net = _SlowStart(slow_calls=3)
    per_image = latency_per_image(net, torch.zeros(10, 3), repeats=5, warmup=3)
    assert per_image < 0.05 / 10 and net.calls == 8


def test_best_linear_picks_the_unit_that_separates_the_classes_on_validation():
    import numpy as np

    from transferlab.studies.strategies.linear import choose_unit

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 10)
    noise = rng.normal(size=(40, 6))
    separable = rng.normal(size=(40, 6)) * 0.1 + 5 * np.eye(4, 6)[y]
    best, scores = choose_unit([noise, separable, noise * 2], y, 0.3, 10.0, seed=0)
    assert best == 1 and scores[1] == 1.0 and len(scores) == 3 and max(scores[0], scores[2]) < 1.0


def test_best_linear_through_the_command(tmp_path):
    import json

    from conftest import project, tiny_params

    run = project(tmp_path, tiny_params(**{"strategies.names": ["best_linear"], "strategies.cut_layers": []}), "0")
    for run_id in ("s0/baseA/r0", "s0/strat-best_linear-i5/r0"):
        run("train", run_id, "--device", "cpu", "--root", str(tmp_path))
    m = json.loads((tmp_path / "data/runs/strategies/s0/strat-best_linear-i5/r0/metrics.json").read_text())
    assert m["treatment"] == "strategy:best_linear" and 1 <= m["unit_chosen"] <= 7 and len(m["val_top1_by_unit"]) == 7
    assert m["train_images"] == 4 * 5 and 0 <= m["topk_mean_top1"] <= 1  # 5 images of each of B's 4 classes
    timed = json.loads((tmp_path / "data/measurements/s0/strat-best_linear-i5/r0.json").read_text())
    assert timed["train_s"] > 0 and {"startup_s", "process_s", "wall_time_s", "resumed_epochs"} <= set(timed)
    assert not {"train_s", "wall_time_s", "git_revision"} & set(m)  # what benchmarks/pipeline_time.py reads, apart
    saved = torch.load(tmp_path / "data/strategies/s0/strat-best_linear-i5/r0.pt", weights_only=True)
    assert saved["unit"] == m["unit_chosen"] and saved["coef"].shape[0] == 4


def test_scratch_trains_every_unit_from_random_initialisation_without_a_source(tmp_path):
    """No transfer: the scratch net needs no baseA (none is trained here) and trains every unit."""
    import json

    from conftest import project, tiny_params

    run = project(tmp_path, tiny_params(**{"strategies.names": ["classifier"], "strategies.cut_layers": []}), "0")
    run("train", "s0/scratch-i5/r0", "--device", "cpu", "--root", str(tmp_path))
    assert not (tmp_path / "data/models").exists()  # no source net was needed
    m = json.loads((tmp_path / "data/runs/strategies/s0/scratch-i5/r0/metrics.json").read_text())
    assert m["treatment"] == "strategy:scratch" and m["source"] == "none" and m["train_images"] == 4 * 5
    saved = torch.load(tmp_path / "data/strategies/s0/scratch-i5/r0.pt", weights_only=True)
    torch.manual_seed(m["seed"])  # the run's initialisation, made again
    fresh = create_model(saved["model_name"], 4, **saved["model_options"]).state_dict()
    units = {k.split(".")[1] for k in fresh if k.startswith("layers.")}
    moved = {
        k.split(".")[1]
        for k, v in saved["state_dict"].items()
        if k.startswith("layers.") and not torch.equal(v, fresh[k])
    }
    assert len(units) == 7 and moved == units  # every unit trained from that initialisation
    first = "layers.0.0.weight"  # a few steps from it, not another draw
    assert (saved["state_dict"][first] - fresh[first]).norm() < 0.2 * fresh[first].norm()


def test_flops_per_image_equal_a_hand_count():
    """A 3x3 convolution of 3 to 4 channels on 8 x 8 pixels (padding 1), pooling, 4 -> 2 linear:
    2 x (4 x 3 x 9 x 64) + 2 x (4 x 2) = 13,840 per image, whatever the batch."""
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    assert flops_per_image(net, torch.rand(5, 3, 8, 8)) == 2 * (4 * 3 * 9 * 64) + 2 * (4 * 2) == 13_840
