"""The dataset-size study holds the optimiser steps fixed, as the paper did (200,000 iterations for
every reduced-data net); a budget in epochs is a choice its figure names."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import project, tiny_params

SIZES = (2, 5, 24)  # images per class; the tiny synthetic set holds 24 of each of 8 classes


def _steps(root, budget: str) -> dict[int, list[int]]:
    """Each size net's evaluation steps, trained through the command."""
    params = tiny_params(
        **{"size.images_per_class": list(SIZES), "size.budget": budget, "train.epochs": 2, "train.batch_size": 16}
    )
    run = project(root, params)
    steps = {}
    for k in SIZES:
        run("train", f"sall/size-i{k}/r0", "--device", "cpu", "--root", str(root))
        m = json.loads((root / f"data/runs/size/sall/size-i{k}/r0/metrics.json").read_text())
        assert m["budget"] == budget and m["train_images"] == 8 * k
        steps[k] = [r["step"] for r in m["history"]]
    return steps


def test_every_size_net_trains_the_full_data_nets_steps(tmp_path):
    """same_steps: 8 x 24 images in batches of 16 are 12 steps an epoch, 24 in 2 epochs, evaluated
    at the same steps, whether a net has 16 images (one batch, repeated) or all 192."""
    steps = _steps(tmp_path, "same_steps")
    assert steps == {k: [12, 24] for k in SIZES}


def test_a_budget_in_epochs_gives_fewer_images_fewer_steps_and_the_figure_says_which(tmp_path):
    from transferlab.studies.size.report import budget_text

    steps = _steps(tmp_path, "epochs")
    assert steps == {2: [1, 2], 5: [3, 6], 24: [12, 24]}  # 16, 40 (2 batches and a half one) and 192 images
    table = pd.DataFrame({"budget": ["epochs"] * 3, "steps": [2, 4, 24]})
    assert budget_text(table) == "a budget in epochs: 2 to 24 optimiser steps (fewer images, fewer steps)"
    same = pd.DataFrame({"budget": ["same_steps"] * 2, "steps": [24, 24]})
    assert budget_text(same) == "every net 24 optimiser steps (the full-data net's: fewer images repeated)"


@pytest.mark.parametrize("budget", ["fixed", None])
def test_an_unknown_budget_is_refused_with_its_key(tmp_path, budget):
    import yaml
    from typer.testing import CliRunner

    from transferlab.cli import app

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params(**{"size.budget": budget})))
    result = CliRunner().invoke(app, ["plan", "--params", str(path)])
    assert result.exit_code == 2 and "size.budget" in result.output and "same_steps" in result.output, result.output
