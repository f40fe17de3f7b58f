"""Involution in PyTorch: composite (unfold/view/multiply/sum) and ``torch.ops.mlx_custom_ops.involution``.

The C++ library (csrc/torch_involution.cpp) defines the operator schemas and CPU kernels through
``TORCH_LIBRARY``; :mod:`mlx_custom_ops.build` builds and loads it, and
:mod:`mlx_custom_ops.torch_library` adds its autograd formula and fake kernels. This module holds the
layers; it imports ``build``, which never imports it back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .build import ensure_torch_op
from .shapes import check_impl, check_input, check_layer


def involution_composite(x: torch.Tensor, w: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    b, c, h, wd = x.shape
    g, kk = w.shape[1], kernel_size * kernel_size
    ho, wo = h // stride, wd // stride
    cols = F.unfold(x, kernel_size, padding=(kernel_size - 1) // 2, stride=stride)  # [B, C*K*K, Ho*Wo]
    cols = cols.view(b, g, c // g, kk, ho, wo)
    return (w.unsqueeze(2) * cols).sum(dim=3).view(b, c, ho, wo)


def involution_custom(x: torch.Tensor, w: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    ensure_torch_op()
    return torch.ops.mlx_custom_ops.involution(x, w, kernel_size, stride)


class Involution(nn.Module):
    """RedNet's involution layer; ``impl`` ("composite" | "custom") can be changed at any time."""

    def __init__(self, channels: int, kernel_size: int = 7, stride: int = 1, group_channels: int = 16,
                 reduction: int = 4, impl: str = "composite") -> None:  # fmt: skip
        super().__init__()
        self.groups = check_layer(channels, kernel_size, stride, group_channels)
        self.channels, self.kernel_size, self.stride = channels, kernel_size, stride
        self.impl = check_impl(impl)
        mid = max(channels // reduction, 1)
        self.pool = nn.AvgPool2d(stride, stride) if stride > 1 else nn.Identity()
        self.reduce = nn.Conv2d(channels, mid, 1, bias=False)
        self.bn = nn.BatchNorm2d(mid)
        self.span = nn.Conv2d(mid, kernel_size * kernel_size * self.groups, 1)

    def set_involution_impl(self, impl: str) -> None:
        self.impl = check_impl(impl)
        if impl == "custom":
            ensure_torch_op()

    def kernels(self, x: torch.Tensor) -> torch.Tensor:
        t = self.span(F.relu(self.bn(self.reduce(self.pool(x)))))
        return t.view(t.shape[0], self.groups, self.kernel_size * self.kernel_size, t.shape[2], t.shape[3])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_compiling():
            check_input(int(x.shape[2]), int(x.shape[3]), self.stride)
        w = self.kernels(x)
        op = involution_custom if self.impl == "custom" else involution_composite
        return op(x, w, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, groups={self.groups}, impl={self.impl}"
