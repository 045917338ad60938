"""torchvision's models as LayeredNets: their ordered children grouped into transferable units.

The adapter keeps torchvision's modules (and so their published weights' names inside each
unit); it only regroups them, so the forward pass is the wrapped model's own.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models as tvm

from transferlab.models.layered import LayeredNet


class _PoolHead(nn.Sequential):
    """Global average pooling, flatten, then the classifier (what torchvision's forward does)."""

    def __init__(self, classifier: nn.Module, relu_first: bool = False) -> None:
        parts: list[nn.Module] = [nn.ReLU(inplace=False)] if relu_first else []
        super().__init__(*parts, nn.AdaptiveAvgPool2d(1), nn.Flatten(), classifier)


def _widths(layers: list[nn.Module], image_size: int) -> list[int]:
    """Output channels of each unit, measured with one small forward pass."""
    x, out = torch.zeros(1, 3, image_size, image_size), []
    with torch.no_grad():
        for layer in layers:
            layer.eval()  # BatchNorm with a batch of one; running statistics untouched
            x = layer(x)
            layer.train()
            out.append(x.shape[1])
    return out


def from_resnet(net: tvm.ResNet) -> LayeredNet:
    """Units: stem (conv1, bn1, relu, maxpool), layer1..layer4; head: pool + fc."""
    layers = [nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool), net.layer1, net.layer2, net.layer3, net.layer4]
    return LayeredNet(layers, _PoolHead(net.fc), ["stem", "layer1", "layer2", "layer3", "layer4"], _widths(layers, 64))


def from_densenet(net: tvm.DenseNet) -> LayeredNet:
    """Units: the stem, each dense block, each transition; norm5 joins the last block."""
    children = dict(net.features.named_children())
    stem = nn.Sequential(*[children[k] for k in ("conv0", "norm0", "relu0", "pool0") if k in children])
    layers, names = [stem], ["stem"]
    for name, module in children.items():
        if name.startswith(("denseblock", "transition")):
            layers.append(module)
            names.append(name.replace("denseblock", "block"))
    layers[-1] = nn.Sequential(layers[-1], children["norm5"])
    return LayeredNet(layers, _PoolHead(net.classifier, relu_first=True), names, _widths(layers, 64))


def from_mobilenet_v2(net: tvm.MobileNetV2) -> LayeredNet:
    """Units: each of the 19 feature blocks (stem, 17 inverted residuals, last 1x1 conv)."""
    layers = list(net.features)
    names = ["stem", *[f"block{i}" for i in range(1, len(layers) - 1)], "conv_last"]
    return LayeredNet(layers, _PoolHead(net.classifier), names, _widths(layers, 64))


def from_alexnet(net: tvm.AlexNet) -> LayeredNet:
    """Units named as convnet8's (CaffeNet's): conv1..conv5 (each with its ReLU and, for 1, 2
    and 5, its max pooling), fc6 (6 x 6 pooling, dropout, linear, ReLU), fc7; head: the
    classifier. torchvision's AlexNet has no local response normalisation, unlike CaffeNet."""
    f, c = net.features, net.classifier
    layers = [f[0:3], f[3:6], f[6:8], f[8:10], f[10:13], nn.Sequential(net.avgpool, nn.Flatten(), *c[0:3]), c[3:6]]
    return LayeredNet(layers, c[6], ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"], _widths(layers, 64))


def alexnet(num_classes: int, dropout: float = 0.5, **_) -> LayeredNet:
    return from_alexnet(tvm.alexnet(num_classes=num_classes, dropout=dropout))


def resnet18(num_classes: int, **_) -> LayeredNet:
    return from_resnet(tvm.resnet18(num_classes=num_classes))


def resnet50(num_classes: int, **_) -> LayeredNet:
    return from_resnet(tvm.resnet50(num_classes=num_classes))


def densenet121(num_classes: int, **_) -> LayeredNet:
    return from_densenet(tvm.densenet121(num_classes=num_classes))


def mobilenet_v2(num_classes: int, dropout: float = 0.2, **_) -> LayeredNet:
    return from_mobilenet_v2(tvm.mobilenet_v2(num_classes=num_classes, dropout=dropout))


def densenet_bc(num_classes: int, depth: int = 100, growth: int = 12, **_) -> LayeredNet:
    """DenseNet-BC for 32 px (L=100, k=12: about 0.8M parameters): torchvision's DenseNet
    (bottleneck, compression 0.5) with the small-image stem, a 3x3 conv of 2k channels."""
    per_block = (depth - 4) // 6
    net = tvm.DenseNet(
        growth_rate=growth,
        block_config=(per_block,) * 3,
        num_init_features=2 * growth,
        bn_size=4,
        num_classes=num_classes,
    )
    net.features.conv0 = nn.Conv2d(3, 2 * growth, 3, padding=1, bias=False)
    for name in ("norm0", "relu0", "pool0"):
        delattr(net.features, name)
    return from_densenet(net)
