import pytest
import torch

from transferlab.config import TrainConfig
from transferlab.models import create_model, list_models
from transferlab.train import make_optimizer
from transferlab.transfer import build_treatment, copy_layers, param_groups


def _net(seed: int, classes: int = 5):
    torch.manual_seed(seed)
    return create_model("convnet8", classes, width=0.125, image_size=16)


def _step(model, groups):
    """One SGD step on random data, in training mode."""
    opt = make_optimizer(groups, TrainConfig(lr=0.1))
    model.train()
    x = torch.randn(16, 3, 16, 16)
    y = torch.randint(0, 5, (16,))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def _snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


# The input sizes each architecture is used at: the 32 px nets of the CIFAR studies, and the
# ImageNet nets at 224 px (data.storage: files) as well as on small images.
SIZES = {"densenet_bc": (32,), "wrn": (32,), "convnet8": (32, 64, 224), "alexnet": (63, 224)}


@pytest.mark.parametrize("name, size", [(n, s) for n in list_models() for s in SIZES.get(n, (32, 224))])
def test_forward_shape_and_depth(name, size):
    model = create_model(name, 7, image_size=size).eval()
    with torch.inference_mode():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 7)
    assert len(model.unit_names) == model.depth == len(model.widths)


def test_copy_gives_the_sources_tensors_and_leaves_the_rest_fresh():
    source, fresh = _net(0, classes=3), _net(1)
    before = _snapshot(fresh)
    copy_layers(source, fresh, 3)
    for i in range(3):
        for k, v in fresh.layers[i].state_dict().items():
            assert torch.equal(v, source.layers[i].state_dict()[k])
    for k, v in fresh.state_dict().items():
        if not k.startswith(("layers.0.", "layers.1.", "layers.2.")):
            assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("n", [1, 3, 7])
def test_frozen_layers_keep_parameters_and_batchnorm_statistics(n):
    model = build_treatment(_net(1), n, _net(0), finetune=False)
    frozen = [_snapshot(model.layers[i]) for i in range(n)]
    trainable_before = _snapshot(model.head)
    _step(model, param_groups(model, n, 1.0))
    for i in range(n):
        for k, v in model.layers[i].state_dict().items():
            assert torch.equal(v, frozen[i][k]), f"layer {i + 1} {k} changed"
    assert not torch.equal(model.head.weight, trainable_before["weight"])
    if n < model.depth:
        assert model.layers[n].training  # layers above n train normally


def test_finetuned_layers_change_and_get_their_own_learning_rate():
    model = build_treatment(_net(1), 3, _net(0), finetune=True)
    before = _snapshot(model.layers[0])
    groups = param_groups(model, 3, 0.1)
    assert [(g.name, len(g.params)) for g in groups] == [("new", 2 * 3 + 2 * 2 + 2), ("x0.1", 3 * 3)]
    opt = make_optimizer(groups, TrainConfig(lr=0.1))
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.01])
    _step(model, groups)
    assert not torch.equal(model.layers[0][0].weight, before["0.weight"])
    assert not torch.equal(model.layers[0][1].running_mean, before["1.running_mean"])


def test_random_control_keeps_its_random_layers_frozen():
    fresh = _net(1)
    init = _snapshot(fresh.layers[0])
    model = build_treatment(fresh, 2, None, finetune=False)
    assert torch.equal(model.layers[0][0].weight, init["0.weight"])
    _step(model, param_groups(model, 2, 1.0))
    assert torch.equal(model.layers[0][1].running_var, init["1.running_var"])
    assert all(not p.requires_grad for i in range(2) for p in model.layers[i].parameters())


def test_copy_refuses_n_outside_the_depth():
    with pytest.raises(ValueError, match="outside 1..7"):
        copy_layers(_net(0), _net(1), 8)


def test_unit_factors_multiply_the_copied_factor():
    model = build_treatment(_net(1), 2, _net(0), finetune=True)
    groups = param_groups(model, 2, 0.1, {"conv1": 0.5, "fc7": 2.0})
    factors = {g.lr_factor: len(g.params) for g in groups}
    assert factors == {2.0: 2, 1.0: 3 * 3 + 2 + 2, 0.1: 3, 0.05: 3}
