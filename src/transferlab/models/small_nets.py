"""Architectures torchvision lacks: WRN-28-10 for 32 px and MobileNet v1."""

from __future__ import annotations

from torch import nn

from transferlab.models.layered import LayeredNet


class _WideBlock(nn.Module):
    """Pre-activation wide residual block (BN-ReLU-conv, dropout between the convs)."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.drop = nn.Dropout(dropout)
        self.shortcut = None if cin == cout and stride == 1 else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        o = nn.functional.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(self.drop(nn.functional.relu(self.bn2(y))))
        return y + (x if self.shortcut is None else self.shortcut(o))


def wrn(num_classes: int, depth: int = 28, widen: int = 10, dropout: float = 0.3, **_) -> LayeredNet:
    """WRN-depth-widen (Zagoruyko and Komodakis); WRN-28-10 has about 36.5M parameters.
    Units: the stem conv, then every residual block of the three groups."""
    n = (depth - 4) // 6
    widths = [16 * widen, 32 * widen, 64 * widen]
    layers, names, chans, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False)], ["stem"], [16], 16
    for g, w in enumerate(widths):
        for b in range(n):
            layers.append(_WideBlock(cin, w, 2 if (g > 0 and b == 0) else 1, dropout))
            names.append(f"group{g + 1}.block{b + 1}")
            chans.append(w)
            cin = w
    head = nn.Sequential(
        nn.BatchNorm2d(cin), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)
    )
    return LayeredNet(layers, head, names, chans)


def _conv_bn(
    cin: int, cout: int, stride: int, groups: int = 1, kernel: int = 3, act: type[nn.Module] = nn.ReLU
) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        act(inplace=True),
    ]


def mobilenet_v1(num_classes: int, width: float = 1.0, dropout: float = 0.0, **_) -> LayeredNet:
    """MobileNet v1 (Howard et al. 2017): a conv stem and 13 depthwise-separable blocks
    (about 3.2M parameters without the classifier at width 1), ReLU6 as in timm's
    mobilenetv1_100, whose ImageNet weights it loads (models/timm_weights.py). Units: block1
    (with the stem) .. block13, so that n counts depthwise blocks as the MobileNet studies do."""
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2), (1024, 1)]
    c = lambda ch: max(8, round(ch * width))  # noqa: E731
    layers, names, chans, cin = [], [], [], c(32)
    for i, (cout, stride) in enumerate(plan, 1):
        stem = _conv_bn(3, c(32), 2, act=nn.ReLU6) if i == 1 else []
        layers.append(
            nn.Sequential(
                *stem,
                *_conv_bn(cin, cin, stride, groups=cin, act=nn.ReLU6),
                *_conv_bn(cin, c(cout), 1, kernel=1, act=nn.ReLU6),
            )
        )
        names.append(f"block{i}")
        chans.append(c(cout))
        cin = c(cout)
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes))
    return LayeredNet(layers, head, names, chans)
