"""Any of timm's convolutional nets by name (model.name: timm/<name>): regrouped into units
exactly, refused in one line where that is impossible, loaded with timm's published weights
from the hub's cache, and trained and transferred through the commands like the project's nets."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import yaml
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.errors import InputError
from transferlab.models import create_model, model_units
from transferlab.models.pretrained import load_pretrained
from transferlab.models.timm_nets import from_timm

from conftest import project, tiny_params

timm = pytest.importorskip("timm")


@pytest.mark.parametrize("name", ["resnet10t", "convnext_atto", "efficientnet_b0", "mobilenetv3_small_050"])
def test_units_end_at_timms_feature_modules_and_compute_the_same(name):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=5).eval()
    reference = copy.deepcopy(model)
    net = from_timm(model, name).eval()
    assert net.unit_names == [f["module"] for f in reference.feature_info] == model_units(f"timm/{name}")
    assert net.widths == [f["num_chs"] for f in reference.feature_info]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net(x), reference(x), atol=1e-5)
        h = x
        for layer, info in zip(net.layers, reference.feature_info):
            h = layer(h)
            assert h.shape[1] == info["num_chs"] and 64 // h.shape[-1] == info["reduction"]
    assert create_model(f"timm/{name}", 3).head(torch.zeros(1, net.widths[-1], 2, 2)).shape == (1, 3)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("timm/vit_tiny_patch16_224", "does not run as the sequence of its modules"),
        ("timm/nonet", "unknown timm model 'nonet'"),
    ],
)
def test_a_timm_model_that_cannot_be_cut_into_units_is_refused_in_one_line(tmp_path, name, expected):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(**{"model.name": name})))
    result = CliRunner().invoke(app, ["plan", "--params", str(tmp_path / "params.yaml")])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert f"model.name: found '{name}'" in lines[0] and expected in lines[0]


@pytest.fixture
def resnet10t_hub(tmp_path):
    """timm's resnet10t (random weights) where the hub's cache would hold resnet10t.c3_in1k."""
    from formats import write_hub_download

    torch.manual_seed(0)
    reference = timm.create_model("resnet10t", pretrained=False).eval()
    blob = write_hub_download(tmp_path / "hub", "timm/resnet10t.c3_in1k", reference.state_dict())
    return reference, tmp_path / "hub", blob


def test_timms_weights_load_from_the_hub_cache_and_are_checked(resnet10t_hub, tmp_path):
    reference, hub, blob = resnet10t_hub
    net, classes, stats = load_pretrained("timm/resnet10t", "c3_in1k", str(hub))
    cfg = timm.get_pretrained_cfg("resnet10t.c3_in1k")
    assert len(classes) == 1000 and stats == (tuple(cfg.mean), tuple(cfg.std))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), reference(x), atol=1e-5)
    with pytest.raises(
        InputError, match=r"models--timm--resnet10t.a1_in1k/snapshots/<revision>/model.safetensors is missing"
    ):
        load_pretrained("timm/resnet10t", "a1_in1k", str(hub))
    blob.chmod(0o644)
    with open(blob, "ab") as f:  # a byte more: the blob no longer has its name's SHA-256
        f.write(b"\x00")
    with pytest.raises(InputError, match=r"SHA-256 .* differs from the hub's"):
        load_pretrained("timm/resnet10t", "c3_in1k", str(hub))
    named = tmp_path / "other.pth"
    torch.save(timm.create_model("resnet18").state_dict(), named)  # another net's weights, named in pretrained.cache
    with pytest.raises(InputError, match="does not hold resnet10t.c3_in1k weights"):
        load_pretrained("timm/resnet10t", "c3_in1k", str(named))
    params = tiny_params(**{"model.name": "timm/resnet10t", "pretrained.weights": ["in1k"], "transfer.layers": [1]})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(app, ["plan", "--params", str(tmp_path / "params.yaml")])
    assert (
        result.exit_code == 2
        and "pretrained.weights[0]: found 'in1k', allowed: one of c3_in1k, checkpoint for timm/resnet10t"
        in result.output
    )


def test_a_timm_net_trains_and_transfers_through_the_commands(resnet10t_hub, tmp_path):
    """Base net, a frozen copy of 2 units from it and from timm's weights, at 32 px."""
    _, hub, _ = resnet10t_hub
    params = tiny_params(
        **{
            "model.name": "timm/resnet10t",
            "data.image_size": 32,
            "transfer.layers": [2],
            "pretrained.weights": ["c3_in1k"],
            "pretrained.cache": str(hub),
            "analysis.decaf_units": [4, 5],
            "strategies.cut_layers": [2],
        }
    )
    run = project(tmp_path, params, "0")
    source_file = tmp_path / "data/models/pretrained/c3_in1k.pt"
    run("pretrained", "--weights", "c3_in1k", str(source_file))
    for run_id in ("s0/baseA/r0", "s0/A2B/r0", "s0/P2B/r0", "s0/cut2/r0"):
        run("train", run_id, "--device", "cpu", "--root", str(tmp_path))
    base, frozen = (torch.load(tmp_path / f"data/models/s0/{r}/r0.pt", weights_only=True) for r in ("baseA", "A2B"))
    copied = [k for k in base["state_dict"] if k.startswith(("layers.0.", "layers.1."))]
    assert copied and all(torch.equal(base["state_dict"][k], frozen["state_dict"][k]) for k in copied)
    metrics = json.loads((tmp_path / "data/runs/grid/s0/P2B/r0/metrics.json").read_text())
    assert metrics["treatment"] == "PnB" and 0 <= metrics["final_top1"] <= 1
