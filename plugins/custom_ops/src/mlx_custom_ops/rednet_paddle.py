"""RedNet (Li et al., "Involution", CVPR 2021) in PaddlePaddle: involution in the stem and in
each bottleneck's 3x3 position. Mirrors rednet_torch.py layer for layer."""

from __future__ import annotations

import paddle
from paddle import nn

from .paddle_ops import Involution

ARCH = {26: (1, 2, 4, 1), 38: (2, 3, 5, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
EXPANSION = 4


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, relu: bool = True, zero_gamma: bool = False) -> nn.Sequential:
    # zero_gamma: the residual branch starts as zero, so a fresh deep model is the identity path
    # rather than a product of involutions whose scale grows block after block.
    gamma = paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)) if zero_gamma else None
    layers = [nn.Conv2D(cin, cout, k, stride, (k - 1) // 2, bias_attr=False), nn.BatchNorm2D(cout, weight_attr=gamma)]
    return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)


class Bottleneck(nn.Layer):
    def __init__(self, cin: int, planes: int, stride: int, inv: dict, downsample: str = "avgpool") -> None:
        super().__init__()
        cout = planes * EXPANSION
        self.conv1 = conv_bn(cin, planes, 1)
        self.conv2 = Involution(planes, stride=stride, **inv)
        self.bn2 = nn.BatchNorm2D(planes)
        self.conv3 = conv_bn(planes, cout, 1, relu=False, zero_gamma=True)
        self.relu = nn.ReLU()
        self.downsample = None
        if (stride != 1 or cin != cout) and downsample == "conv":  # the authors' release: a strided 1x1 conv
            self.downsample = nn.Sequential(conv_bn(cin, cout, 1, stride, relu=False))
        elif stride != 1 or cin != cout:
            pool = [nn.AvgPool2D(stride, stride)] if stride > 1 else []
            self.downsample = nn.Sequential(*pool, conv_bn(cin, cout, 1, relu=False))

    def forward(self, x):
        out = self.relu(self.bn2(self.conv2(self.conv1(x))))
        out = self.conv3(out)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class RedNet(nn.Layer):
    def __init__(self, depth: int = 26, num_classes: int = 1000, width: int = 64, stem_channels: int = 64,
                 kernel_size: int = 7, stem_kernel_size: int = 3, group_channels: int = 16, reduction: int = 4,
                 impl: str = "composite", downsample: str = "avgpool") -> None:  # fmt: skip
        super().__init__()
        inv = {"group_channels": group_channels, "reduction": reduction, "impl": impl}
        half = stem_channels // 2
        self.stem = nn.Sequential(
            conv_bn(3, half, 3, 2),
            Involution(half, kernel_size=stem_kernel_size, **inv),
            nn.BatchNorm2D(half),
            nn.ReLU(),
            conv_bn(half, stem_channels, 3),
        )
        self.maxpool = nn.MaxPool2D(3, 2, 1)
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
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.stages(self.maxpool(self.stem(x)))
        return self.fc(paddle.flatten(self.pool(x), 1))
