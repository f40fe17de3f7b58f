"""Involution in PaddlePaddle: composite (unfold/reshape/multiply/sum) and the C++ custom operator.

``involution_composite`` and ``involution_custom`` compute the same thing from the input ``x``
[B, C, H, W] and the per-pixel kernels ``w`` [B, G, K*K, H/S, W/S]; the ``Involution`` layer adds
the kernel generator of RedNet (avg-pool when strided, 1x1 conv C -> C/r, BN, ReLU, 1x1 conv ->
K*K*G) and picks either implementation through its ``impl`` attribute. With ``impl="custom"`` the
generator's ReLU is ``ReLUPyLayer``, the Python route to a custom operator.
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import nn
from paddle.autograd import PyLayer

from .build import ensure_paddle_op
from .shapes import check_impl, check_input, check_layer


def involution_composite(x: paddle.Tensor, w: paddle.Tensor, kernel_size: int, stride: int) -> paddle.Tensor:
    """The operator as usually first written: unfold the K x K windows, multiply, sum."""
    _, c, h, wd = x.shape
    g, kk = w.shape[1], kernel_size * kernel_size
    ho, wo = h // stride, wd // stride
    cols = F.unfold(x, kernel_size, strides=stride, paddings=(kernel_size - 1) // 2)  # [B, C*K*K, Ho*Wo]
    cols = cols.reshape([-1, g, c // g, kk, ho, wo])
    return (w.unsqueeze(2) * cols).sum(axis=3).reshape([-1, c, ho, wo])


@paddle.jit.not_to_static  # the op's Python API works on static values as it is
def involution_custom(x: paddle.Tensor, w: paddle.Tensor, kernel_size: int, stride: int) -> paddle.Tensor:
    """The C++ operator (forward and backward kernels), built on first use and cached."""
    return ensure_paddle_op().involution(x, w, kernel_size, stride)


class ReLUPyLayer(PyLayer):
    """ReLU as a Python custom operator: forward and backward written by hand."""

    @staticmethod
    def forward(ctx, x):
        y = F.relu(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensor()
        return dy * (y > 0).astype(dy.dtype)


class Involution(nn.Layer):
    """RedNet's involution layer; ``impl`` ("composite" | "custom") can be changed at any time."""

    def __init__(self, channels: int, kernel_size: int = 7, stride: int = 1, group_channels: int = 16,
                 reduction: int = 4, impl: str = "composite") -> None:  # fmt: skip
        super().__init__()
        self.groups = check_layer(channels, kernel_size, stride, group_channels)
        self.channels, self.kernel_size, self.stride = channels, kernel_size, stride
        self.impl = check_impl(impl)
        mid = max(channels // reduction, 1)
        self.pool = nn.AvgPool2D(stride, stride) if stride > 1 else None
        self.reduce = nn.Conv2D(channels, mid, 1, bias_attr=False)
        self.bn = nn.BatchNorm2D(mid)
        self.span = nn.Conv2D(mid, kernel_size * kernel_size * self.groups, 1)

    def set_involution_impl(self, impl: str) -> None:
        self.impl = check_impl(impl)

    def kernels(self, x: paddle.Tensor) -> paddle.Tensor:
        t = self.pool(x) if self.pool is not None else x
        t = self.bn(self.reduce(t))
        t = ReLUPyLayer.apply(t) if self.impl == "custom" else F.relu(t)
        t = self.span(t)
        kk = self.kernel_size * self.kernel_size
        return t.reshape([-1, self.groups, kk, t.shape[2], t.shape[3]])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        check_input(x.shape[2], x.shape[3], self.stride)
        w = self.kernels(x)
        op = involution_custom if self.impl == "custom" else involution_composite
        return op(x, w, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, groups={self.groups}, impl={self.impl}"
