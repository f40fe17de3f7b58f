"""RedNet (Li et al., "Involution", CVPR 2021) in PyTorch: involution in the stem and in each
bottleneck's 3x3 position. Mirrors rednet_paddle.py layer for layer."""

from __future__ import annotations

from torch import nn

from .torch_ops import Involution

ARCH = {26: (1, 2, 4, 1), 38: (2, 3, 5, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
EXPANSION = 4


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, relu: bool = True, zero_gamma: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=False), nn.BatchNorm2d(cout)]
    if zero_gamma:  # see rednet_paddle.conv_bn
        nn.init.zeros_(layers[1].weight)
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class Bottleneck(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int, inv: dict, downsample: str = "avgpool") -> None:
        super().__init__()
        cout = planes * EXPANSION
        self.conv1 = conv_bn(cin, planes, 1)
        self.conv2 = Involution(planes, stride=stride, **inv)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv_bn(planes, cout, 1, relu=False, zero_gamma=True)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if (stride != 1 or cin != cout) and downsample == "conv":  # the authors' release: a strided 1x1 conv
            self.downsample = nn.Sequential(conv_bn(cin, cout, 1, stride, relu=False))
        elif stride != 1 or cin != cout:
            pool = [nn.AvgPool2d(stride, stride)] if stride > 1 else []
            self.downsample = nn.Sequential(*pool, conv_bn(cin, cout, 1, relu=False))

    def forward(self, x):
        out = self.relu(self.bn2(self.conv2(self.conv1(x))))
        out = self.conv3(out)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class RedNet(nn.Module):
    def __init__(self, depth: int = 26, num_classes: int = 1000, width: int = 64, stem_channels: int = 64,
                 kernel_size: int = 7, stem_kernel_size: int = 3, group_channels: int = 16, reduction: int = 4,
                 impl: str = "composite", downsample: str = "avgpool") -> None:  # fmt: skip
        super().__init__()
        inv = {"group_channels": group_channels, "reduction": reduction, "impl": impl}
        half = stem_channels // 2
        self.stem = nn.Sequential(
            conv_bn(3, half, 3, 2),
            Involution(half, kernel_size=stem_kernel_size, **inv),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
            conv_bn(half, stem_channels, 3),
        )
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, cin = [], stem_channels
        for i, blocks in enumerate(ARCH[depth]):
            planes = width * 2**i
            layers = []
            for j in range(blocks):
                layers.append(
                    Bottleneck(
                        cin, planes, 2 if (i > 0 and j == 0) else 1, dict(inv, kernel_size=kernel_size), downsample
                    )
                )
                cin = planes * EXPANSION
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.stages(self.maxpool(self.stem(x)))
        return self.fc(self.pool(x).flatten(1))
