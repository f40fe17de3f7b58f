"""Involution in PyTorch: composite (unfold/view/multiply/sum) and ``torch.ops.mlx_custom_ops.involution``.

The C++ library (csrc/torch_involution.cpp) defines the operator schemas and CPU kernels through
``TORCH_LIBRARY``; this module adds what lives best in Python: the autograd formula
(``torch.library.register_autograd``) and fake kernels (``torch.library.register_fake``) so that
``torch.compile`` and ``torch.export`` trace through the operator without running it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .shapes import check_impl, check_input, check_layer

_REGISTERED = False


def involution_composite(x: torch.Tensor, w: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    b, c, h, wd = x.shape
    g, kk = w.shape[1], kernel_size * kernel_size
    ho, wo = h // stride, wd // stride
    cols = F.unfold(x, kernel_size, padding=(kernel_size - 1) // 2, stride=stride)  # [B, C*K*K, Ho*Wo]
    cols = cols.view(b, g, c // g, kk, ho, wo)
    return (w.unsqueeze(2) * cols).sum(dim=3).view(b, c, ho, wo)


def involution_custom(x: torch.Tensor, w: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    from .build import ensure_torch_op

    ensure_torch_op()
    return torch.ops.mlx_custom_ops.involution(x, w, kernel_size, stride)


def register_python_parts() -> None:
    """Autograd and fake kernels for the C++ operators (called once the library is loaded)."""
    global _REGISTERED
    if _REGISTERED:
        return

    @torch.library.register_fake("mlx_custom_ops::involution")
    def _(x, w, kernel_size, stride):
        return x.new_empty((x.shape[0], x.shape[1], w.shape[3], w.shape[4]))

    @torch.library.register_fake("mlx_custom_ops::involution_backward")
    def _(grad_out, x, w, kernel_size, stride):
        return torch.empty_like(x), torch.empty_like(w)

    def setup_context(ctx, inputs, output):
        x, w, kernel_size, stride = inputs
        ctx.save_for_backward(x, w)
        ctx.kernel_size, ctx.stride = kernel_size, stride

    def backward(ctx, grad_out):
        x, w = ctx.saved_tensors
        gx, gw = torch.ops.mlx_custom_ops.involution_backward(grad_out, x, w, ctx.kernel_size, ctx.stride)
        return gx, gw, None, None

    torch.library.register_autograd("mlx_custom_ops::involution", backward, setup_context=setup_context)
    _REGISTERED = True


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
            from .build import ensure_torch_op

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
