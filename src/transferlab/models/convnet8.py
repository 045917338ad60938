"""The paper's 8-layer CaffeNet/AlexNet, scaled for small images (conv1..conv5, fc6, fc7, head)."""

from __future__ import annotations

from torch import nn

from transferlab.models.layered import LayeredNet

# Channel counts of CaffeNet's conv1..conv5 and fc6/fc7 at width 1.
CAFFENET_CONV = (96, 256, 384, 384, 256)
CAFFENET_FC = 4096


def _conv(cin: int, cout: int, kernel: int, pool: bool) -> nn.Sequential:
    # BatchNorm in place of the paper's LRN: it trains in a few CPU epochs, and it is the
    # case where freezing must also freeze running statistics.
    parts: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]
    if pool:
        parts.append(nn.MaxPool2d(3, stride=2, padding=1))
    return nn.Sequential(*parts)


def _fc(fin: int, fout: int, dropout: float, flatten: bool = False) -> nn.Sequential:
    parts: list[nn.Module] = [nn.Flatten()] if flatten else []
    parts += [nn.Linear(fin, fout), nn.ReLU(inplace=True), nn.Dropout(dropout)]
    return nn.Sequential(*parts)


def convnet8_small(num_classes: int, width: float = 0.125, dropout: float = 0.5, image_size: int = 32) -> LayeredNet:
    """CaffeNet's layer structure for 32 px inputs: three 2x poolings leave a 4x4 map at 32 px."""
    c = [max(4, round(ch * width)) for ch in CAFFENET_CONV]
    f = max(8, round(CAFFENET_FC * width))
    side = -(-image_size // 8)  # ceil: each pooling halves the side, rounding up
    layers = [
        _conv(3, c[0], 5, pool=True),
        _conv(c[0], c[1], 5, pool=True),
        _conv(c[1], c[2], 3, pool=False),
        _conv(c[2], c[3], 3, pool=False),
        _conv(c[3], c[4], 3, pool=True),
        _fc(c[4] * side * side, f, dropout, flatten=True),
        _fc(f, f, dropout),
    ]
    names = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    return LayeredNet(layers, nn.Linear(f, num_classes), names, [*c, f, f])


def caffenet(num_classes: int, width: float = 1.0, dropout: float = 0.5) -> LayeredNet:
    """The paper's CaffeNet for 224-227 px: conv1 96 11x11/4, LRN, pool; conv2 256 5x5 in two
    groups, LRN, pool; conv3 384; conv4 384 and conv5 256 in two groups, pool; fc6, fc7 4096."""
    c = [max(4, 2 * round(ch * width / 2)) for ch in CAFFENET_CONV]  # even: two groups
    f = max(8, round(CAFFENET_FC * width))

    def conv(cin: int, cout: int, k: int, stride: int, pad: int, groups: int, lrn: bool, pool: bool) -> nn.Sequential:
        parts: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, pad, groups=groups), nn.ReLU(inplace=True)]
        if lrn:
            parts.append(nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0))
        if pool:
            parts.append(nn.MaxPool2d(3, stride=2))
        return nn.Sequential(*parts)

    layers = [
        conv(3, c[0], 11, 4, 0, 1, lrn=True, pool=True),
        conv(c[0], c[1], 5, 1, 2, 2, lrn=True, pool=True),
        conv(c[1], c[2], 3, 1, 1, 1, lrn=False, pool=False),
        conv(c[2], c[3], 3, 1, 1, 2, lrn=False, pool=False),
        # The 6x6 pooling makes 224 and 227 px inputs give CaffeNet's 9216 fc6 inputs.
        nn.Sequential(conv(c[3], c[4], 3, 1, 1, 2, lrn=False, pool=True), nn.AdaptiveAvgPool2d(6)),
        _fc(c[4] * 36, f, dropout, flatten=True),
        _fc(f, f, dropout),
    ]
    names = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    return LayeredNet(layers, nn.Linear(f, num_classes), names, [*c, f, f])


def convnet8(num_classes: int, width: float = 0.125, dropout: float = 0.5, image_size: int = 32, **_) -> LayeredNet:
    """The paper's 8-layer net: CaffeNet itself from 128 px up, else its small-image variant."""
    if image_size >= 128:
        return caffenet(num_classes, width, dropout)
    return convnet8_small(num_classes, width, dropout, image_size)
