"""Pretrained torchvision sources: weight files found, checked, regrouped, and transferred from."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from torchvision import models as tvm
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.errors import InputError
from transferlab.models.pretrained import load_pretrained, weights_path

from conftest import ROOT, project, tiny_params


@pytest.fixture
def weight_file(tmp_path):
    """A resnet18 weight file where torchvision's cache would hold IMAGENET1K_V1 (random
    weights: the real file cannot be downloaded here, so its hash check must be off)."""
    torch.manual_seed(0)
    reference = tvm.resnet18(weights=None)
    path, _ = weights_path("resnet18", "IMAGENET1K_V1", str(tmp_path / "cache"))
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    return reference.eval(), path


def test_loaded_weights_give_the_torchvision_models_output(weight_file):
    reference, path = weight_file
    net, classes, stats = load_pretrained("resnet18", "IMAGENET1K_V1", str(path.parent), verify=False)
    x = torch.randn(2, 3, 64, 64)
    assert stats == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert len(classes) == 1000 and net.unit_names == ["stem", "layer1", "layer2", "layer3", "layer4"]
    with torch.no_grad():
        assert torch.equal(net.eval()(x), reference(x))


def test_weight_file_errors_name_the_file(weight_file, tmp_path):
    _, path = weight_file
    with pytest.raises(InputError, match=r"SHA-256 .* differs from the published f37072fd"):
        load_pretrained("resnet18", "IMAGENET1K_V1", str(path.parent), verify=True)
    with pytest.raises(
        InputError,
        match=r"pretrained: .*empty/resnet18-f37072fd.pth is missing; download https://download.pytorch.org/models/resnet18-f37072fd.pth",
    ):
        load_pretrained("resnet18", "IMAGENET1K_V1", str(tmp_path / "empty"))
    with pytest.raises(InputError, match="densenet_bc has no ImageNet weights here"):
        load_pretrained("densenet_bc", "DEFAULT", None)


@pytest.fixture
def timm_hub(tmp_path):
    """timm's mobilenetv1_100 (random weights) where the hub's cache would hold its download."""
    timm = pytest.importorskip("timm")
    from formats import write_hub_download

    torch.manual_seed(0)
    reference = timm.create_model("mobilenetv1_100", pretrained=False).eval()
    blob = write_hub_download(tmp_path / "hub", "timm/mobilenetv1_100.ra4_e3600_r224_in1k", reference.state_dict())
    return reference, tmp_path / "hub", blob


def test_mobilenet_v1_loads_timms_imagenet_weights_from_the_hub_cache(timm_hub):
    """The same outputs as timm's own net; n counts the 13 depthwise blocks (the stem in block1)."""
    reference, hub, blob = timm_hub
    net, classes, stats = load_pretrained("mobilenet_v1", "ra4_e3600_r224_in1k", str(hub))
    assert len(classes) == 1000 and stats == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert net.unit_names == [f"block{i}" for i in range(1, 14)] and net.widths[10] == 512 and net.widths[12] == 1024
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), reference(x), atol=1e-5)
    blob.chmod(0o644)
    with open(blob, "ab") as f:  # a byte more: the blob no longer has its name's SHA-256
        f.write(b"\x00")
    with pytest.raises(InputError, match=r"SHA-256 .* differs from the hub's"):
        load_pretrained("mobilenet_v1", "ra4_e3600_r224_in1k", str(hub))
    with pytest.raises(
        InputError, match="cannot be read as weights"
    ):  # without the check (data.verify: false), still one line
        load_pretrained("mobilenet_v1", "ra4_e3600_r224_in1k", str(hub), verify=False)


def test_mobilenet_v1_weights_missing_or_from_a_named_file(timm_hub, tmp_path):
    reference, hub, blob = timm_hub
    with pytest.raises(
        InputError,
        match=r"pretrained: .*models--timm--mobilenetv1_100.ra4_e3600_r224_in1k/snapshots/<revision>/model.safetensors is missing; "
        r"fetch https://huggingface.co/timm/mobilenetv1_100.ra4_e3600_r224_in1k",
    ):
        load_pretrained("mobilenet_v1", "ra4_e3600_r224_in1k", str(tmp_path / "nohub"))
    named = tmp_path / "mine.pth"
    torch.save(reference.state_dict(), named)  # a checkpoint file the user names in pretrained.cache
    net, _, _ = load_pretrained("mobilenet_v1", "ra4_e3600_r224_in1k", str(named))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), reference(x), atol=1e-5)
    torch.save({"conv_stem.weight": torch.zeros(1)}, named)
    with pytest.raises(InputError, match="does not hold mobilenetv1_100 weights"):
        load_pretrained("mobilenet_v1", "ra4_e3600_r224_in1k", str(named))


def test_params_name_the_allowed_weights(tmp_path):
    params = tiny_params(**{"pretrained.weights": ["IMAGENET1K_V1"]})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(app, ["plan", "--params", str(tmp_path / "params.yaml")])
    assert (
        result.exit_code == 2
        and "pretrained.weights[0]: found 'IMAGENET1K_V1', allowed: one of checkpoint for convnet8" in result.output
    )
    params["model"]["name"] = "resnet18"
    params["pretrained"]["weights"] = ["V9"]
    params["transfer"]["layers"] = [1, 5]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(app, ["plan", "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 2 and "allowed: one of DEFAULT, IMAGENET1K_V1, checkpoint for resnet18" in result.output


def test_the_static_weight_table_is_torchvisions_and_checking_it_imports_no_torchvision():
    """params.yaml's weight names are checked against a static table (each command checks them:
    importing torchvision's would cost about 2 s); it must be the installed torchvision's."""
    import subprocess
    import sys

    from transferlab.models import TORCHVISION_WEIGHTS
    from transferlab.models.pretrained import ADAPTERS

    assert set(TORCHVISION_WEIGHTS) == set(ADAPTERS)
    for name, names in TORCHVISION_WEIGHTS.items():
        assert names == tuple(w.name for w in tvm.get_model_weights(name)), name  # iteration skips DEFAULT
    check = (
        "import json, sys; from transferlab.config import parse_params; from conftest import tiny_params; "
        "parse_params(tiny_params(**{'model.name': 'resnet18', 'transfer.layers': [1, 5], "
        "'analysis.decaf_units': [4, 5], 'pretrained.weights': ['IMAGENET1K_V1']})); "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    proc = subprocess.run([sys.executable, "-c", check], cwd=ROOT / "tests", capture_output=True, text=True, check=True)
    imported = json.loads(proc.stdout)
    assert "transferlab" in imported and not {"torch", "torchvision"} & set(imported)


def test_a_pretrained_source_transfers_through_the_commands(weight_file, tmp_path):
    _, path = weight_file
    params = tiny_params(
        **{
            "model.name": "resnet18",
            "analysis.decaf_units": [4, 5],
            "transfer.layers": [2],
            "pretrained.weights": ["IMAGENET1K_V1"],
            "pretrained.cache": str(path.parent),
            "data.verify": False,
            "strategies.cut_layers": [2],
        }
    )
    run = project(tmp_path, params, "0")
    assert "s0/P2B+/r0" in run("plan") and "s0/cutP2/r0" in run("plan")
    source_file = tmp_path / "data/models/pretrained/IMAGENET1K_V1.pt"
    run("pretrained", "--weights", "IMAGENET1K_V1", str(source_file))
    for run_id in ("s0/P2B/r0", "s0/cutP2/r0"):
        run("train", run_id, "--device", "cpu", "--root", str(tmp_path))
    source, tuned = (
        torch.load(source_file, weights_only=True),
        torch.load(tmp_path / "data/models/s0/P2B/r0.pt", weights_only=True),
    )
    for key in [k for k in source["state_dict"] if k.startswith(("layers.0.", "layers.1."))]:
        assert torch.equal(source["state_dict"][key], tuned["state_dict"][key]), key  # frozen copies
    assert torch.allclose(
        tuned["input_mean"].flatten(), torch.tensor([0.485, 0.456, 0.406])
    )  # ImageNet normalisation kept
    assert json.loads((tmp_path / "data/runs/grid/s0/P2B/r0/metrics.json").read_text())["treatment"] == "PnB"
    cut = json.loads((tmp_path / "data/runs/strategies/s0/cutP2/r0/metrics.json").read_text())
    assert (
        cut["run_id"] == "s0/cutP2/r0"
        and cut["source"] == "P"
        and cut["parameters"] < 1_000_000
        and json.loads((tmp_path / "data/measurements/s0/cutP2/r0.json").read_text())["latency_s_per_image"] > 0
    )


def test_strategies_also_start_from_the_pretrained_net(weight_file, tmp_path):
    """The lecture's strategies from the ImageNet source as well as from baseA, with its own
    input normalisation; best_linear picks the unit of the pretrained net on a validation part."""
    _, path = weight_file
    params = tiny_params(
        **{
            "model.name": "resnet18",
            "analysis.decaf_units": [4, 5],
            "transfer.layers": [2],
            "pretrained.weights": ["IMAGENET1K_V1"],
            "pretrained.cache": str(path.parent),
            "data.verify": False,
            "strategies.cut_layers": [],
            "strategies.names": ["classifier", "best_linear"],
        }
    )
    run = project(tmp_path, params, "0")
    planned = run("plan")
    assert (
        "s0/stratP-classifier-i5/r0" in planned
        and "s0/strat-classifier-i5/r0" in planned
        and "s0/stratP-best_linear-i5/r0" in planned
    )
    run("pretrained", "--weights", "IMAGENET1K_V1", str(tmp_path / "data/models/pretrained/IMAGENET1K_V1.pt"))
    for run_id in ("s0/stratP-classifier-i5/r0", "s0/stratP-best_linear-i5/r0"):
        run("train", run_id, "--device", "cpu", "--root", str(tmp_path))
    classifier = json.loads((tmp_path / "data/runs/strategies/s0/stratP-classifier-i5/r0/metrics.json").read_text())
    assert classifier["source"] == "P" and classifier["strategy"] == "classifier"
    tuned = torch.load(tmp_path / "data/strategies/s0/stratP-classifier-i5/r0.pt", weights_only=True)
    assert torch.allclose(
        tuned["input_mean"].flatten(), torch.tensor([0.485, 0.456, 0.406])
    )  # ImageNet normalisation kept
    linear = json.loads((tmp_path / "data/runs/strategies/s0/stratP-best_linear-i5/r0/metrics.json").read_text())
    assert (
        1 <= linear["unit_chosen"] <= 5 and len(linear["val_top1_by_unit"]) == 5 and 0 <= linear["topk_mean_top1"] <= 1
    )


def test_a_net_trained_elsewhere_is_a_source_of_its_own_model_only(tmp_path):
    """pretrained.weights [checkpoint]: data/sources/checkpoint.pt (here a baseA of the tiny
    configuration) becomes the source with its own weights, classes and normalisation, and a
    frozen PnB copies its units; a checkpoint of other model options, or none, is one line."""
    params = tiny_params(**{"transfer.layers": [2], "pretrained.weights": ["checkpoint"]})
    run = project(tmp_path, params, "0")
    assert "s0/P2B/r0" in run("plan")
    run("train", "s0/baseA/r0", "--device", "cpu", "--root", str(tmp_path))
    trained = torch.load(tmp_path / "data/models/s0/baseA/r0.pt", weights_only=True)
    sources = tmp_path / "data/sources"
    sources.mkdir()
    source_file = tmp_path / "data/models/pretrained/checkpoint.pt"
    convert = ["pretrained", "--weights", "checkpoint", str(source_file), "--root", str(tmp_path)]

    def refused(*expected: str) -> bool:
        result = CliRunner().invoke(app, [*convert, "--params", str(tmp_path / "params.yaml")])
        return result.exit_code == 2 and result.output.count("\n") == 1 and all(e in result.output for e in expected)

    assert refused("data/sources/checkpoint.pt not found")
    (sources / "checkpoint.pt").write_bytes((tmp_path / "data/models/s0/baseA/r0.pt").read_bytes())
    run(*convert)
    source = torch.load(source_file, weights_only=True)
    assert source["classes"] == trained["classes"] and source["num_classes"] == len(trained["classes"])
    for key in ("input_mean", "input_std"):
        assert torch.equal(source[key], trained[key]), key
    assert all(torch.equal(source["state_dict"][k], v) for k, v in trained["state_dict"].items())
    run("train", "s0/P2B/r0", "--device", "cpu", "--root", str(tmp_path))
    tuned = torch.load(tmp_path / "data/models/s0/P2B/r0.pt", weights_only=True)
    for key in [k for k in trained["state_dict"] if k.startswith(("layers.0.", "layers.1."))]:
        assert torch.equal(trained["state_dict"][key], tuned["state_dict"][key]), key  # frozen copies
    assert torch.equal(tuned["input_mean"], trained["input_mean"])  # the source's normalisation kept
    params["data"]["image_size"] = 24  # the checkpoint's net was built for 16 px images
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert refused("model_options", "'image_size': 24")
    (sources / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert refused("not a checkpoint of a trained net")
    params["data"]["image_size"] = 16
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    torch.save({k: v for k, v in trained.items() if k != "classes"}, sources / "checkpoint.pt")  # saved by hand
    assert refused("not a checkpoint of a trained net (KeyError: 'classes')")
