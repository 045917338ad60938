"""Each kind of bad params.yaml value: one line naming key, value and what is allowed; exit 2."""

import shutil

import pytest
import yaml
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.config import TrainConfig

from conftest import ROOT, tiny_params

runner = CliRunner()


def _run(tmp_path, params, *args):
    path = tmp_path / "params.yaml"
    path.write_text(params if isinstance(params, str) else yaml.safe_dump(params))
    return runner.invoke(app, [*args, "--params", str(path)])


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"transfer.layers": [1, 9]}, "transfer.layers[1]: found 9, allowed: 1..7 for convnet8"),
        ({"base.epochs": 0}, "base.epochs: found 0, Input should be greater than or equal to 1"),
        ({"base.epochs": "three"}, "base.epochs: found 'three', Input should be a valid integer"),
        ({"transfer.targets": ["C"]}, "transfer.targets[0]: found 'C', Input should be 'A' or 'B'"),
        ({"model.name": "vgg99"}, "model.name: found 'vgg99', unknown model, allowed: alexnet, convnet8"),
        ({"model.name": "alexnet"}, "data.image_size: found 16, allowed: >= 63 for alexnet"),
        ({"analysis.decaf_units": [6, 8]}, "analysis.decaf_units[1]: found 8, allowed: 1..7 for convnet8"),
        ({"analysis.decaf_units": [6, 6]}, "analysis.decaf_units: found [6, 6], entries must be unique"),
        (
            {"analysis.data_draws": [0, 1], "analysis.max_train_per_class": None},
            "analysis.data_draws: found [0, 1], allowed: one draw while analysis.max_train_per_class is null",
        ),
        (
            {"analysis.data_draws": [0, 1], "analysis.decaf_units": []},
            "analysis.data_draws: found [0, 1], allowed: one draw while analysis.decaf_units is []",
        ),
        ({"analysis.data_draws": [0, -1]}, "analysis.data_draws: found [0, -1], entries must be >= 0"),
        ({"data.train_per_class": 0}, "data.train_per_class: found 0, Input should be greater than or equal to 1"),
        ({"split.fraction": 1.5}, "split.fraction: found 1.5, Input should be less than 1"),
        (
            {"split.method": "random", "split.fraction": 0.05},
            "split.fraction: found 0.05, allowed: a fraction that leaves both halves of 8 classes non-empty",
        ),
        ({"split.fraction": 0.3}, "split.fraction: found 0.3, allowed: 0.5 with split.method yosinski2014"),
        ({"split.method": "halves"}, "split.method: found 'halves', Input should be 'yosinski2014' or 'random'"),
        ({"splits": ["classes"]}, "split.classes_a: found [], allowed: a non-empty list of class names or indices"),
        (
            {"split.classes_a": ["cat"], "split.classes_b": ["dog", "cat"]},
            "split.classes_b: found 'cat', allowed: classes not in split.classes_a",
        ),
        ({"splits": ["cross"]}, "splits: found 'cross', allowed: ['cross'] exactly when data.b_dataset is set"),
        (
            {"data.dataset": "cifar100", "data.b_dataset": "svhn"},
            "splits: found [0], allowed: ['cross'] exactly when data.b_dataset is set",
        ),
        (
            {"data.dataset": "cifar10", "data.b_dataset": "cifar10"},
            "data.b_dataset: found 'cifar10', allowed: a data set other than data.dataset",
        ),
        (
            {"data.dataset": "imagefolder"},
            "data.image_folder: found None, allowed: the folder that holds the imagefolder images",
        ),
        ({"data.dataset": "stl10"}, "data.dataset: found 'stl10', Input should be 'synthetic', 'cifar10'"),
        (
            {"data.max_train_per_class": 0},
            "data.max_train_per_class: found 0, Input should be greater than or equal to 1",
        ),
        ({"splits": [0, "xy"]}, "splits: found [0, 'xy'], entry 'xy' is not allowed"),
        ({"replicates": [0, 0]}, "replicates: found [0, 0], entries must be unique"),
        ({"base.schedule": "linear"}, "base.schedule: found 'linear', Input should be 'cosine', 'step' or 'constant'"),
        ({"base.warmup_epochs": 5}, "base.warmup_epochs: found 5.0, allowed: a value below epochs (1)"),
        ({"train.warmup_epochs": 5}, "train.warmup_epochs: found 5.0, allowed: a value below epochs (1)"),
        ({"transfer.epochs": 0}, "transfer.epochs: found 0, Input should be greater than or equal to 1"),
        ({"train.lr": -1}, "train.lr: found -1, Input should be greater than 0"),
        ({"base_nets": ["A"]}, "base_nets: found ['A'], allowed: [A, B], or [] (no base nets"),
        ({"base_nets": []}, "transfer.layers: found [1, 7], allowed: [] when base_nets is []"),
        (
            {"base_nets": [], "transfer.layers": []},
            "binary.betas: found [0.0, 0.5], allowed: [] when base_nets is []",
        ),
        (
            {"base_nets": [], "transfer.layers": [], "binary.betas": []},
            "strategies.names: found ['classifier', 'finetune_top'], allowed: [] when base_nets is []",
        ),
        (
            {"base_nets": [], "transfer.layers": [], "binary.betas": [], "strategies.names": []},
            "strategies.cut_layers: found [2], allowed: [] when base_nets is []",
        ),
        (
            {
                "base_nets": [],
                "transfer.layers": [],
                "binary.betas": [],
                "strategies.names": [],
                "strategies.cut_layers": [],
            },
            "base_nets: found [], allowed: [A, B], or [] with pretrained.weights naming a net to analyse",
        ),
        ({"binary.betas": [0.5]}, "binary.betas: found [0.5], the list must include 0"),
        ({"transfer.control_all_classes": [2]}, "transfer.control_all_classes: found [2], the list must include 0"),
        (
            {"transfer.control_all_classes": [0, 9]},
            "transfer.control_all_classes[1]: found 9, allowed: 0..7 for convnet8",
        ),
    ],
)
def test_bad_values_give_one_line_and_exit_2(tmp_path, overrides, expected):
    result = _run(tmp_path, tiny_params(**overrides), "plan")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.output
    assert "Traceback" not in result.output


def test_unknown_key_names_the_allowed_keys(tmp_path):
    p = tiny_params()
    p["transfer"]["epoch"] = 3
    result = _run(tmp_path, p, "plan")
    assert result.exit_code == 2
    assert "transfer.epoch: unknown key, allowed here: epochs, iterations, batch_size" in result.output


def test_broken_yaml_and_missing_file(tmp_path):
    result = _run(tmp_path, "data: [1, 2\n", "plan")
    assert result.exit_code == 2 and "not valid YAML" in result.output
    result = runner.invoke(app, ["plan", "--params", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "no such parameter file" in result.output


def test_a_failing_stage_writes_nothing(tmp_path):
    out = tmp_path / "prepared.pt"
    result = _run(tmp_path, tiny_params(**{"data.synthetic.num_classes": 2}), "prepare", str(out))
    assert result.exit_code == 2 and "data.synthetic.num_classes: found 2" in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "params.yaml"]


def test_plan_lists_the_runs(tmp_path):
    result = _run(tmp_path, tiny_params(), "plan")
    assert result.exit_code == 0
    assert (
        "20 runs: base 2, BnB 2, BnB+ 2, AnB 2, AnB+ 2, random 2, binary A' 2, binary on B 2, strategy 2, no transfer 1, cut 1"
        in result.output
    )
    assert "s0/binB_b0.5_h1_p0_f0/r0" in result.output
    assert "s0/A7B+/r0" in result.output


def test_every_stage_has_help():
    names = [
        "plan",
        "code",
        "settings",
        "download",
        "prepare",
        "split",
        "train",
        "pretrained",
        "features",
        "analyze",
        "report",
    ]
    top = runner.invoke(app, ["--help"])
    assert all(n in top.output for n in names)
    for name in [*names, "report grid", "report binary", "report strategies", "report analysis"]:
        assert runner.invoke(app, [*name.split(), "--help"]).exit_code == 0, name


def test_params_yaml_spells_out_the_schema_defaults():
    from transferlab.config import Params, load_params

    from conftest import ROOT

    assert load_params(ROOT / "params.yaml") == Params()


def test_training_stages_depend_on_their_studys_settings_only():
    """A training stage reads its settings from data/settings/<study>.json (written by the
    settings stage from `train` and the study's overrides), never from training keys of
    params.yaml: so it reruns exactly when its effective settings change."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    study_of = {
        "train-base": "base",
        "binary-base": "base",
        "transfer": "transfer",
        "finetune": "transfer",
        "control": "transfer",
        "pretrained-frozen": "transfer",
        "pretrained-finetune": "transfer",
        "binary-finetune": "binary",
        "strategy": "strategies",
        "cut": "strategies",
        "cut-pretrained": "strategies",
        "size": "size",
    }
    training_keys = {"train", "base", "binary.finetune", "strategies.train", "size.train"} | {
        f"transfer.{k}" for k in TrainConfig.model_fields
    }
    for name, study in study_of.items():
        assert f"${{settings_dir}}/{study}.json" in stages[name]["deps"], name  # dvc.yaml vars: settings_dir
        assert not any(
            str(k).split(".")[0] in ("train", "base") or k in training_keys for k in stages[name]["params"]
        ), name
    assert set(stages["settings"]["params"]) == {
        "train",
        "base",
        "transfer",
        "binary.finetune",
        "strategies.train",
        "size.train",
    }


def test_a_study_overrides_only_the_keys_it_names():
    from transferlab.config import parse_params

    p = parse_params({"train": {"epochs": 7, "lr": 0.1}, "transfer": {"epochs": 3}, "base": {"epochs": None}})
    assert (p.training("base").epochs, p.training("transfer").epochs, p.training("transfer").lr) == (7, 3, 0.1)
    assert (
        p.training("binary").patience == 2 and p.training("binary").epochs == 7
    )  # the study's early stopping, the shared schedule
    assert p.training("strategies").batch_size == 64 and set(p.settings()) == {
        "base",
        "transfer",
        "binary",
        "strategies",
        "size",
    }


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (
            {"transfer.patience": 3},
            "transfer.patience: found 3, allowed: 0, or a validation part: val_fraction > 0, or data.val_folder: true",
        ),
        ({"train.patience": 1}, "train.patience: found 1, allowed: 0, or a validation part"),
        (
            {"data.val_folder": True},
            "data.val_folder: found True, allowed: false, or true with a folder data set (imagenet, imagenet100, imagefolder, arrays) and no data.b_dataset",
        ),
        ({"binary.finetune.val_fraction": 0.0}, "binary.finetune.patience: found 2, allowed: 0, or a validation part"),
        (
            {"base.layer_lr_factors": {"conv9": 0.1}},
            "base.layer_lr_factors.conv9: found 'conv9', allowed: unit names of convnet8: conv1, conv2",
        ),
    ],
)
def test_trainer_option_errors(tmp_path, overrides, expected):
    result = _run(tmp_path, tiny_params(**overrides), "plan")
    assert result.exit_code == 2 and expected in result.output, result.output


def test_a_report_names_the_missing_runs_and_writes_nothing(tmp_path):
    result = _run(tmp_path, tiny_params(), "report", "grid", "--root", str(tmp_path))
    assert result.exit_code == 2 and "data/runs/grid/planned.json is missing: `transferlab plan" in result.output
    planned = _run(tmp_path, tiny_params(), "plan", "--no-ids", "--out", str(tmp_path / "data/runs"))
    assert planned.exit_code == 0 and "data/runs/strategies/planned.json: 4 runs" in planned.output, planned.output
    result = _run(tmp_path, tiny_params(), "report", "grid", "--root", str(tmp_path))
    assert result.exit_code == 2
    assert (
        "error: 12 run(s) asked for by params.yaml have no metrics: s0/baseA/r0, s0/baseB/r0, s0/B1B/r0 and 9 more"
        in result.output
    )
    assert not (tmp_path / "reports").exists()


def _keys(d: dict, prefix: str = "") -> set[str]:
    return {
        k
        for key, v in d.items()
        for k in ({f"{prefix}{key}"} | (_keys(v, f"{prefix}{key}.") if isinstance(v, dict) else set()))
    }


@pytest.mark.parametrize("preset", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_presets_are_complete_valid_and_documented(preset):
    from transferlab.config import check_graph_keys, load_params

    check_graph_keys(preset, load_params(preset), ROOT / "dvc.yaml")  # every key dvc.yaml reads, written
    result = CliRunner().invoke(app, ["plan", "--no-ids", "--params", str(preset)])
    assert result.exit_code == 0 and "valid" in result.output, result.output
    raw = yaml.safe_load(preset.read_text())
    # every key of params.yaml spelled out (dvc.yaml declares them); beyond them only a study's training overrides
    overrides = ("base.", "transfer.", "binary.finetune.", "strategies.train.", "size.train.")
    spelled = {
        k
        for k in _keys(yaml.safe_load((ROOT / "params.yaml").read_text()))
        if not k.startswith(overrides) or k.startswith("transfer.layers")
    }
    assert spelled <= _keys(raw) and all(k.startswith(overrides) for k in _keys(raw) - spelled)
    header = preset.read_text().split("\n\n")[0]
    assert (
        header.startswith("#") and ("GPU" in header or "CPU" in header) and "Needs" in header
    )  # what it costs, what it needs


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "--bogus"], "error: transferlab train: No such option: --bogus (see transferlab train --help)"),
        (["train"], "error: transferlab train: Missing argument 'run_id'. (see transferlab train --help)"),
        (
            ["split", "nofile.pt", "out.json"],
            "error: transferlab split: Invalid value for 'dataset': file 'nofile.pt' does not exist. (see transferlab split --help)",
        ),
        (["nosuchcmd"], "error: transferlab: No such command 'nosuchcmd'. (see transferlab --help)"),
    ],
)
def test_usage_errors_of_the_real_command_are_one_line_and_exit_2(tmp_path, args, expected):
    import subprocess
    import sys
    from pathlib import Path

    command = Path(sys.executable).parent / "transferlab"  # the console script users run
    proc = subprocess.run([str(command), *args], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip() == expected and not proc.stdout


@pytest.mark.parametrize(
    "run_id, expected",
    [
        ("s0/A9B/r0", "s0/A9B/r0: not a run that"),
        ("s0/cut3/r0", "s0/cut3/r0: not a run that"),
        ("s0/A1Z/r0", "not a run id: 's0/A1Z/r0'"),
        (
            "s0/A1B/r0",
            "s0/A1B/r0: missing input(s) data/prepared/dataset.pt, data/splits/s0.json, data/settings/transfer.json, data/models/s0/baseA/r0.pt",
        ),
    ],
)
def test_train_names_a_bad_or_unplanned_run_and_its_missing_inputs(tmp_path, monkeypatch, run_id, expected):
    monkeypatch.chdir(tmp_path)
    result = _run(tmp_path, tiny_params(), "train", run_id, "--device", "cpu")
    assert result.exit_code == 2 and expected in result.output and len(result.output.strip().splitlines()) == 1, (
        result.output
    )


def test_presets_carry_the_studies_numbers():
    """The binary-partition study's budgets (issue 15): WRN-28-10 112 epochs on A and 71 on B;
    DenseNet-BC 175 and up to 100 with early stopping; the cross-data-set presets fine-tune at
    that budget; no flips on SVHN digits; DenseNet-121 on ImageNet-100."""
    from transferlab.config import load_params

    presets = {p.stem: load_params(p) for p in (ROOT / "configs").glob("*.yaml")}
    wrn, dense = presets["binary_cifar100_wrn"], presets["binary_cifar100_densenet"]
    yos = presets["yosinski2014_imagenet"]  # the paper's solver: max_iter 450000, stepsize 100000, batch 256
    for study in ("base", "transfer"):
        t = yos.training(study)
        assert (t.iterations, t.step_iterations, t.batch_size, t.lr, t.schedule) == (450000, 100000, 256, 0.01, "step")
    assert yos.training("binary").iterations is None  # a study that gives epochs means epochs
    assert yos.transfer.control_all_classes == list(range(8))  # the random control on all 1000 classes, as it ran
    binary = [name for name in presets if name.startswith(("binary_", "cifar100_to_"))]
    assert binary and all({1, 2, 4} <= set(presets[name].binary.heads) for name in binary)  # more heads did worse
    assert (wrn.model.name, wrn.model.dropout, wrn.train.epochs, wrn.training("binary").epochs) == ("wrn", 0.3, 112, 71)
    assert (dense.model.name, dense.train.epochs, dense.training("binary").epochs) == (
        "densenet_bc",
        175,
        100,
    ) and dense.training("binary").patience > 0
    for name in ("cifar100_to_cifar10", "cifar100_to_svhn"):
        b = presets[name].training("binary")
        assert (b.epochs, b.patience > 0, b.val_fraction) == (100, True, 0.1), name
    svhn = presets["cifar100_to_svhn"]
    assert not any(
        svhn.training(study).augment for study in ("transfer", "binary", "strategies")
    )  # B is SVHN: no flips
    imagenet = presets["binary_imagenet100_densenet121"]
    assert (imagenet.data.dataset, imagenet.model.name, imagenet.data.image_size) == ("imagenet100", "densenet121", 224)
    # v1 on the study's .npy frames, every block in the grid, cut at n = 1..11 (and 13: baseB+), val_acc from their val part
    mobilenet = presets["mobilenet_lanes"]
    assert (mobilenet.model.name, mobilenet.data.dataset, mobilenet.data.val_folder) == ("mobilenet_v1", "arrays", True)
    assert mobilenet.transfer.layers == list(range(1, 14)) and mobilenet.strategies.cut_layers == [*range(1, 12), 13]
    assert mobilenet.pretrained.weights == ["ra4_e3600_r224_in1k"]  # PnB / PnB+: the study's "AnB" from ImageNet
    for name in (
        "binary_cifar100_wrn",
        "binary_cifar100_densenet",
        "binary_imagenet100_densenet121",
        "cifar100_to_cifar10",
        "cifar100_to_svhn",
    ):
        assert "Where the numbers come from" in (ROOT / "configs" / f"{name}.yaml").read_text().split("\n\n")[0], name


def test_plan_refuses_a_params_file_without_a_key_that_dvc_yaml_reads(tmp_path):
    """DVC reads the keys it interpolates and declares from params.yaml itself, with no
    defaults: one left out would stop `dvc repro` before any stage, in DVC's words."""
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    del raw["transfer"]["control_all_classes"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["plan", "--no-ids", "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and "transfer.control_all_classes missing" in line and "control_all_classes: []" in line
