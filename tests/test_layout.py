"""dvc.yaml and the code name the same runs at the same paths: for every run params.yaml
plans, exactly one DVC stage trains it (`transferlab train <run id>`), with Layout's inputs as
its deps and Layout's outputs as its outs; and no stage trains a run that is not planned."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from transferlab.config import parse_params
from transferlab.runs import STUDIES, Layout, parse_run, planned_all

from conftest import ROOT, tiny_params
from pipeline import resolved_stages

VARIANTS = {
    "default": {},
    "two-splits-both-directions-replicates": {
        "splits": [0, "mn"],
        "transfer.targets": ["A", "B"],
        "replicates": [0, 1],
        "binary.frozen_units": [0, 2],
        "size.images_per_class": [2, 5],
        "transfer.control_all_classes": [0, 3],
    },
    "pretrained": {
        "model.name": "resnet18",
        "analysis.decaf_units": [4, 5],
        "pretrained.weights": ["IMAGENET1K_V1"],
        "transfer.layers": [1, 3],
        "strategies.cut_layers": [2],
    },
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_dvc_stages_and_layout_agree_for_every_planned_run(tmp_path, name):
    from dvc.repo import Repo

    raw = tiny_params(**VARIANTS[name])
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    Repo.init(str(tmp_path), no_scm=True).close()
    params = parse_params(raw)
    layout = Layout.of(params)
    trained = {}
    stages = resolved_stages(tmp_path)
    plan = next(s for s in stages if s.name == "plan")
    assert set(plan.outs) == {str(layout.planned(study)) for study in STUDIES}  # beside each study's runs
    assert {f"report-{study}" for study in STUDIES} <= {
        s.name for s in stages if set(s.deps) & {str(layout.runs_of(study)) for study in STUDIES}
    }
    for stage in stages:
        m = re.fullmatch(r"transferlab train --device auto (\S+)", stage.cmd)
        if m:
            assert m[1] not in trained, f"{m[1]} is trained by two stages"
            trained[m[1]] = stage
    planned = planned_all(params)
    assert set(trained) == {str(r) for r in planned}
    for run in planned:
        stage = trained[str(run)]
        assert parse_run(str(run)) == run
        assert set(stage.deps) == {"data/code/train.json", *(str(p) for p in layout.inputs(run))}, stage.name
        assert set(stage.outs) == {str(p) for p in layout.outputs(run)}, stage.name
