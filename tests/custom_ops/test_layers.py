"""Involution layers and RedNet: Paddle and PyTorch twins agree on the same weights, composite and
custom implementations agree, torch.compile/torch.export trace the custom op, and the hook
wrapper swaps Involution layers in another plugin's model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pluggy
import pytest

paddle = pytest.importorskip("paddle")
torch = pytest.importorskip("torch")

import mlx_custom_ops  # noqa: E402
from mlx_custom_ops import paddle_ops as P  # noqa: E402
from mlx_custom_ops import torch_ops as T  # noqa: E402
from mlx_custom_ops.config import CustomOpsOptions  # noqa: E402
from mlx_custom_ops.model import paddle_to_torch_state  # noqa: E402
from mlx_custom_ops.rednet_paddle import RedNet as PaddleRedNet  # noqa: E402
from mlx_custom_ops.rednet_torch import RedNet as TorchRedNet  # noqa: E402
from mlx_custom_ops.shapes import InvolutionShapeError  # noqa: E402
from mlx_custom_ops.swap import swap_involution  # noqa: E402

from mlx_core import hookimpl, hookspecs  # noqa: E402
from mlx_core.testing import stage_context  # noqa: E402

TINY_NET = {"width": 4, "stem_channels": 8, "group_channels": 4, "kernel_size": 7, "stem_kernel_size": 3}


def twins(impl_paddle: str, impl_torch: str):
    paddle.seed(3)
    p = PaddleRedNet(26, 3, impl=impl_paddle, **TINY_NET)
    t = TorchRedNet(26, 3, impl=impl_torch, **TINY_NET)
    t.load_state_dict(paddle_to_torch_state(p))
    return p, t


@pytest.mark.parametrize(("stride", "size"), [(1, 9), (2, 10)])
def test_involution_layers_agree_across_frameworks(paddle_op, torch_op, stride, size):
    paddle.seed(1)
    p = P.Involution(32, kernel_size=7, stride=stride, group_channels=16, impl="composite")
    t = T.Involution(32, kernel_size=7, stride=stride, group_channels=16, impl="composite")
    t.load_state_dict(paddle_to_torch_state(p))
    x = np.random.default_rng(0).standard_normal((2, 32, size, size)).astype(np.float32)
    outs = []
    for impl in ("composite", "custom"):
        p.set_involution_impl(impl)
        t.set_involution_impl(impl)
        outs += [p(paddle.to_tensor(x)).numpy(), t(torch.from_numpy(x)).detach().numpy()]
    for o in outs[1:]:
        np.testing.assert_allclose(o, outs[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impls", [("composite", "composite"), ("custom", "custom")])
def test_rednet_twins_agree(paddle_op, torch_op, impls):
    p, t = twins(*impls)
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    p.eval(), t.eval()
    a = p(paddle.to_tensor(x)).numpy()
    b = t(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    p.train(), t.train()  # batch statistics: the training-mode forward agrees too
    np.testing.assert_allclose(
        p(paddle.to_tensor(x)).numpy(), t(torch.from_numpy(x)).detach().numpy(), rtol=1e-3, atol=1e-3
    )


def test_rednet_custom_gradients_match_composite(torch_op):
    torch.manual_seed(0)
    net = TorchRedNet(26, 3, impl="composite", **TINY_NET).double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    grads = []
    for impl in ("composite", "custom"):
        swap_involution(net, impl)
        net.zero_grad()
        net(x).square().sum().backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("depth", [26, 38])
def test_rednet_block_layout(depth):
    from mlx_custom_ops.rednet_torch import ARCH

    net = TorchRedNet(depth, 2, **TINY_NET)
    assert [len(s) for s in net.stages] == list(ARCH[depth])
    invs = [m for m in net.modules() if isinstance(m, T.Involution)]
    assert len(invs) == 1 + sum(ARCH[depth])  # stem + one per bottleneck
    assert [m.kernel_size for m in invs[1:]] == [7] * sum(ARCH[depth])


def test_torch_compile_and_export_trace_the_custom_op(torch_op):
    torch.manual_seed(0)
    layer = T.Involution(16, kernel_size=3, stride=2, group_channels=8, impl="custom").eval()
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        want = layer(x)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), want)
    prog = torch.export.export(layer, (x,))
    targets = {str(n.target) for n in prog.graph.nodes if n.op == "call_function"}
    assert "mlx_custom_ops.involution.default" in targets
    torch.testing.assert_close(prog.module()(x), want)


def test_torch_compile_backward_through_custom_op(torch_op):
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 2, 9, 5, 5, dtype=torch.float64, requires_grad=True)
    f = torch.compile(lambda a, b: T.involution_custom(a, b, 3, 1).sin().sum(), backend="aot_eager", fullgraph=True)
    f(x, w).backward()
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    T.involution_composite(x, w, 3, 1).sin().sum().backward()
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gw, w.grad)


@pytest.mark.parametrize("cls", [P.Involution, T.Involution])
def test_layer_shape_rules(cls):
    with pytest.raises(InvolutionShapeError, match="channels=20 is not divisible by group_channels=16"):
        cls(20)
    with pytest.raises(InvolutionShapeError, match="kernel_size=4 must be odd"):
        cls(16, kernel_size=4)
    with pytest.raises(InvolutionShapeError, match="impl='fast'"):
        cls(16, impl="fast")


def test_stride_must_divide_input():
    layer = T.Involution(16, kernel_size=3, stride=2)
    with pytest.raises(InvolutionShapeError, match="stride=2 does not divide the input height 7"):
        layer(torch.randn(1, 16, 7, 8))


# --- composability: the hook wrapper swaps layers in another plugin's model ----------------------
class OtherPlugin:
    """A domain plugin whose model happens to contain Involution layers."""

    @hookimpl
    def mlx_model(self, ctx, data):
        if ctx.plugin != "other":
            return None
        torch.manual_seed(0)
        return {"net": torch.nn.Sequential(T.Involution(16, kernel_size=3), torch.nn.ReLU(), T.Involution(16))}


def model_via_hooks(tmp_path: Path, involution: str | None):
    pm = pluggy.PluginManager("mlx")
    pm.add_hookspecs(hookspecs)
    pm.register(OtherPlugin(), name="other")
    pm.register(mlx_custom_ops, name="custom_ops")
    options = {"custom_ops": CustomOpsOptions(involution=involution)} if involution else {}
    ctx = stage_context(tmp_path, "other", stage="model", option_values=options)
    return pm.hook.mlx_model(ctx=ctx, data=None), ctx.manifest


def test_hook_wrapper_swaps_involution_in_other_plugins_model(tmp_path, torch_op):
    model, manifest = model_via_hooks(tmp_path, "custom")
    layers = [m for m in model["net"].modules() if isinstance(m, T.Involution)]
    assert [m.impl for m in layers] == ["custom", "custom"]
    assert manifest.data["records"]["custom_ops.involution"] == {"impl": "custom", "layers_swapped": 2}
    x = torch.randn(1, 16, 6, 6)
    got = model["net"](x)
    swap_involution(model, "composite")
    torch.testing.assert_close(got, model["net"](x), rtol=1e-5, atol=1e-5)


def test_hook_wrapper_leaves_models_alone_without_the_option(tmp_path):
    model, manifest = model_via_hooks(tmp_path, None)
    assert {m.impl for m in model["net"].modules() if isinstance(m, T.Involution)} == {"composite"}
    assert "custom_ops.involution" not in manifest.data["records"]


def test_swap_reaches_paddle_layers(paddle_op):
    net = paddle.nn.Sequential(P.Involution(16, kernel_size=3), paddle.nn.ReLU())
    assert swap_involution({"model": net}, "custom") == 1
    assert net[0].impl == "custom"


def test_backbone_swap_replaces_only_same_shape_3x3_convolutions():
    from mlx_custom_ops.swap import swap_backbone_convs
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(
                nn.Conv2d(3, 16, 3, 2, 1),  # stride 2, 3 -> 16: kept
                nn.Conv2d(16, 16, 3, 1, 1, groups=16),  # depthwise: swapped
                nn.Conv2d(16, 16, 3, 1, 2, dilation=2),  # dilated: kept
                nn.Conv2d(16, 16, 1),  # 1x1: kept
                nn.Conv2d(16, 24, 3, 1, 1),  # 16 -> 24: kept
                nn.Conv2d(24, 24, 3, 1, 1, bias=False),  # plain 3x3, 24 channels (groups of 8): swapped
            )
            self.head = nn.Conv2d(24, 24, 3, 1, 1)  # not under backbone: kept

        def forward(self, x):
            return self.head(self.backbone(x))

    net = Net()
    assert swap_backbone_convs({"model": net}, "composite") == ["backbone.1", "backbone.5"]
    assert isinstance(net.backbone[1], T.Involution) and net.backbone[5].groups == 3
    assert isinstance(net.head, torch.nn.Conv2d) and isinstance(net.backbone[0], torch.nn.Conv2d)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 24, 8, 8)
