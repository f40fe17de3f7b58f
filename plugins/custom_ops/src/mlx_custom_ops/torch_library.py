"""The Python half of ``torch.ops.mlx_custom_ops.involution``: its autograd formula
(``torch.library.register_autograd``) and fake kernels (``torch.library.register_fake``), so that
``torch.compile`` and ``torch.export`` trace through the operator without running it.

Registered by :func:`mlx_custom_ops.build.ensure_torch_op` once the C++ library is loaded. Kept
apart from :mod:`mlx_custom_ops.torch_ops` (the layers, which call ``ensure_torch_op``) so that
``build`` and ``torch_ops`` do not import each other.
"""

from __future__ import annotations

import torch

_REGISTERED = False


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
