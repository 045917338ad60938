"""Every architecture of the registry exposes its transferable units the same way."""

import pytest
import torch
from torchvision import models as tvm

from transferlab.config import TrainConfig
from transferlab.models import MIN_IMAGE_SIZE, create_model, list_models, model_units
from transferlab.models.torchvision_nets import from_alexnet, from_densenet, from_mobilenet_v2, from_resnet
from transferlab.train import make_optimizer
from transferlab.transfer import build_treatment, param_groups

# Published parameter counts: (classes, parameters, counted without the classifier?)
PUBLISHED = {
    "densenet_bc": (10, 0.769e6, False),  # Huang et al. 2017, L=100, k=12 ("0.8M")
    "wrn": (10, 36.5e6, False),  # Zagoruyko and Komodakis 2016, WRN-28-10
    "densenet121": (1000, 7.98e6, False),
    "mobilenet_v1": (1000, 3.2e6, True),  # Howard et al. 2017: 4.2M with the 1000-way classifier
    "resnet18": (1000, 11.69e6, False),
    "resnet50": (1000, 25.56e6, False),
    "mobilenet_v2": (1000, 3.50e6, False),
    "alexnet": (1000, 61.10e6, False),  # torchvision's AlexNet (CaffeNet's one-tower form, no LRN)
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_counts_match_the_published_ones(name):
    classes, expected, body_only = PUBLISHED[name]
    model = create_model(name, classes, width=1.0, image_size=32)
    count = sum(p.numel() for p in (model.layers if body_only else model).parameters())
    assert abs(count - expected) / expected < 0.02, count


@pytest.mark.parametrize("name", list_models())
def test_units_have_names_and_widths(name):
    model = create_model(name, 5, width=1.0 if name != "convnet8" else 0.125, image_size=32)
    assert len(model.unit_names) == len(set(model.unit_names)) == model.depth == len(model.widths)
    assert all(w > 0 for w in model.widths)
    assert model.unit_names == model_units(name)  # the registry's static metadata is the built net's


@pytest.mark.parametrize("name", list_models())
def test_copy_and_freeze_work_on_every_architecture(name):
    opts = (
        {"width": 0.25 if name == "mobilenet_v1" else 1.0, "image_size": 32}
        if name != "convnet8"
        else {"image_size": 32}
    )
    torch.manual_seed(0)
    source = create_model(name, 3, **opts)
    torch.manual_seed(1)
    fresh = create_model(name, 4, **opts)
    n = fresh.depth // 2
    untouched = {k: v.clone() for k, v in fresh.layers[n].state_dict().items()}
    model = build_treatment(fresh, n, source, finetune=False)
    for i in range(n):
        for k, v in model.layers[i].state_dict().items():
            assert torch.equal(v, source.layers[i].state_dict()[k])
    assert all(torch.equal(v, untouched[k]) for k, v in model.layers[n].state_dict().items())
    frozen = [{k: v.clone() for k, v in model.layers[i].state_dict().items()} for i in range(n)]
    opt = make_optimizer(param_groups(model, n, 1.0), TrainConfig(lr=0.1))
    model.train()
    side = max(32, MIN_IMAGE_SIZE.get(name, 0))
    torch.nn.functional.cross_entropy(model(torch.randn(4, 3, side, side)), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    for i in range(n):
        for k, v in model.layers[i].state_dict().items():
            assert torch.equal(v, frozen[i][k]), f"{name} unit {i + 1} {k}"


@pytest.mark.parametrize(
    "build, adapt",
    [
        (tvm.resnet18, from_resnet),
        (tvm.densenet121, from_densenet),
        (tvm.mobilenet_v2, from_mobilenet_v2),
        (tvm.alexnet, from_alexnet),
    ],
)
def test_the_adapter_keeps_torchvisions_output(build, adapt):
    torch.manual_seed(0)
    net = build(num_classes=7).eval()
    x = torch.randn(2, 3, 64, 64)
    expected = net(x)
    wrapped = adapt(net).eval()
    torch.testing.assert_close(wrapped(x), expected, rtol=0, atol=0)


def test_convnet8_at_224_px_is_caffenet():
    model = create_model("convnet8", 1000, width=1.0, image_size=224)
    assert abs(sum(p.numel() for p in model.parameters()) - 60.97e6) / 60.97e6 < 0.02  # CaffeNet/AlexNet
    assert model.layers[1][0].groups == 2 and isinstance(model.layers[0][2], torch.nn.LocalResponseNorm)
    assert model(torch.randn(1, 3, 227, 227)).shape == (1, 1000)
    assert model.unit_names == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
