"""Involution operators: composite twins agree across frameworks; each C++ operator agrees with its
composite twin (forward and both gradients, float64) and with numeric gradients."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import random_case

paddle = pytest.importorskip("paddle")
torch = pytest.importorskip("torch")

from mlx_custom_ops import paddle_ops as P  # noqa: E402
from mlx_custom_ops import torch_ops as T  # noqa: E402

CASES = 16


def paddle_run(fn, x, w, k, s, gout):
    xp = paddle.to_tensor(x, stop_gradient=False)
    wp = paddle.to_tensor(w, stop_gradient=False)
    y = fn(xp, wp, k, s)
    (y * paddle.to_tensor(gout)).sum().backward()
    return y.numpy(), xp.grad.numpy(), wp.grad.numpy()


def torch_run(fn, x, w, k, s, gout):
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    y = fn(xt, wt, k, s)
    (y * torch.from_numpy(gout)).sum().backward()
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()


def reference(x, w, k, s):
    """A direct loop-free numpy statement of the operator, independent of both frameworks."""
    b, c, h, wd = x.shape
    g, p = w.shape[1], (k - 1) // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    out = np.zeros((b, c, h // s, wd // s), x.dtype)
    for kh in range(k):
        for kw in range(k):
            win = xp[:, :, kh : kh + h : s, kw : kw + wd : s]
            out += np.repeat(w[:, :, kh * k + kw], c // g, axis=1) * win
    return out


@pytest.mark.parametrize("seed", range(CASES))
def test_composites_agree_with_reference_and_each_other(seed):
    x, w, k, s = random_case(np.random.default_rng(seed))
    gout = np.random.default_rng(seed + 100).standard_normal(reference(x, w, k, s).shape)
    py, pgx, pgw = paddle_run(P.involution_composite, x, w, k, s, gout)
    ty, tgx, tgw = torch_run(T.involution_composite, x, w, k, s, gout)
    np.testing.assert_allclose(py, reference(x, w, k, s), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(py, ty, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pgx, tgx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pgw, tgw, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(CASES))
def test_paddle_custom_op_matches_composite(paddle_op, seed):
    x, w, k, s = random_case(np.random.default_rng(seed))
    gout = np.random.default_rng(seed + 100).standard_normal(reference(x, w, k, s).shape)
    want = paddle_run(P.involution_composite, x, w, k, s, gout)
    got = paddle_run(P.involution_custom, x, w, k, s, gout)
    for name, a, b in zip(("out", "grad x", "grad w"), got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11, err_msg=f"{name} k={k} s={s} x={x.shape} w={w.shape}")


@pytest.mark.parametrize("seed", range(CASES))
def test_torch_custom_op_matches_composite(torch_op, seed):
    x, w, k, s = random_case(np.random.default_rng(seed))
    gout = np.random.default_rng(seed + 100).standard_normal(reference(x, w, k, s).shape)
    want = torch_run(T.involution_composite, x, w, k, s, gout)
    got = torch_run(T.involution_custom, x, w, k, s, gout)
    for name, a, b in zip(("out", "grad x", "grad w"), got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11, err_msg=f"{name} k={k} s={s} x={x.shape} w={w.shape}")


def test_random_cases_cover_the_geometries():
    cases = [random_case(np.random.default_rng(seed)) for seed in range(CASES)]
    assert {s for *_, s in cases} == {1, 2}
    assert {w.shape[1] for _, w, _, _ in cases} >= {1, 2, 3}
    assert any(x.shape[2] % 2 == 1 for x, *_ in cases)
    assert {k for _, _, k, _ in cases} >= {3, 5, 7}


@pytest.mark.parametrize("case", [(7, 1, 2, 7), (3, 2, 3, 8), (5, 1, 1, 5)])
def test_torch_custom_op_numeric_gradients(torch_op, case):
    k, s, g, h = case
    rng = np.random.default_rng(k)
    x = torch.from_numpy(rng.standard_normal((1, 2 * g, h, h + s))).requires_grad_()
    w = torch.from_numpy(rng.standard_normal((1, g, k * k, h // s, (h + s) // s))).requires_grad_()
    # fast_mode: checks random projections of the Jacobian instead of all of it (seconds, not minutes)
    assert torch.autograd.gradcheck(lambda a, b: T.involution_custom(a, b, k, s), (x, w), fast_mode=True)


@pytest.mark.parametrize("case", [(7, 1, 2, 7), (3, 2, 3, 8), (5, 1, 1, 5)])
def test_paddle_custom_op_numeric_gradients(paddle_op, case):
    """Central differences of sum(out * gout) w.r.t. sampled elements of x and w."""
    k, s, g, h = case
    rng = np.random.default_rng(k)
    x = rng.standard_normal((1, 2 * g, h, h + s))
    w = rng.standard_normal((1, g, k * k, h // s, (h + s) // s))
    gout = rng.standard_normal((1, 2 * g, h // s, (h + s) // s))
    _, gx, gw = paddle_run(P.involution_custom, x, w, k, s, gout)

    def loss(xa, wa):
        return float((P.involution_custom(paddle.to_tensor(xa), paddle.to_tensor(wa), k, s).numpy() * gout).sum())

    eps = 1e-6
    for arr, grad, which in ((x, gx, 0), (w, gw, 1)):
        for flat in rng.choice(arr.size, size=min(25, arr.size), replace=False):
            idx = np.unravel_index(flat, arr.shape)
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += eps
            minus[idx] -= eps
            args_p = (plus, w) if which == 0 else (x, plus)
            args_m = (minus, w) if which == 0 else (x, minus)
            numeric = (loss(*args_p) - loss(*args_m)) / (2 * eps)
            assert abs(numeric - grad[idx]) < 1e-6 * max(1.0, abs(numeric)), (which, idx, numeric, grad[idx])


def test_torch_opcheck(torch_op):
    """torch.library.opcheck: schema, fake kernel, autograd registration and dispatch are consistent."""
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.standard_normal((2, 6, 6, 6))).requires_grad_()
    w = torch.from_numpy(rng.standard_normal((2, 3, 9, 3, 3))).requires_grad_()
    torch.library.opcheck(torch.ops.mlx_custom_ops.involution.default, (x, w, 3, 2))


def test_paddle_op_rejects_bad_geometry(paddle_op):
    x = paddle.randn([1, 4, 6, 6])
    w = paddle.randn([1, 2, 16, 6, 6])  # K*K = 16: an even kernel
    with pytest.raises(Exception, match="kernel_size must be odd"):
        P.involution_custom(x, w, 4, 1)


def test_torch_op_rejects_bad_geometry(torch_op):
    x = torch.randn(1, 4, 7, 7)
    w = torch.randn(1, 2, 9, 3, 3)
    with pytest.raises(RuntimeError, match="stride must divide"):
        T.involution_custom(x, w, 3, 2)


def test_float32_agrees(paddle_op, torch_op):
    x, w, k, s = random_case(np.random.default_rng(7), dtype=np.float32)
    a = P.involution_custom(paddle.to_tensor(x), paddle.to_tensor(w), k, s).numpy()
    b = T.involution_custom(torch.from_numpy(x), torch.from_numpy(w), k, s).numpy()
    np.testing.assert_allclose(a, reference(x.astype(np.float64), w.astype(np.float64), k, s), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# Stride-1 geometries that reach every block of the vectorised kernels (involution_cpu.h). Column
# chunks: 13 and 5 channels per group = channel blocks of 8, 4 and 1; rows of 19 and 17 columns =
# several 8-column chunks with a partial last one; K = 9 and 3 = tap blocks of 8 + 1 and 3.
# Channels-last forward (channels per group a multiple of 8, K = 3/5/7): 16, 8 and 32 channels per
# group (one or two 16-lane vectors, 8 lanes); 8- and 14-column rows (whole blocks of 8 and 7 pixels,
# weights read in place), 11 and 9 columns (a partial block, weights through the padded buffer).
BLOCKED = [(9, 2, 13, 6, 19), (7, 1, 16, 8, 8), (3, 3, 5, 3, 17), (5, 2, 8, 5, 11), (3, 1, 32, 4, 9), (7, 1, 16, 5, 14)]
GRADCHECKED = {(3, 3, 5, 3, 17), (3, 1, 32, 4, 9)}


@pytest.mark.parametrize("case", BLOCKED)
def test_custom_ops_match_composite_on_vectorised_blocks(paddle_op, torch_op, case):
    """float64 to 1e-11 against the composite (out and both gradients), float32 to 1e-5, both frameworks."""
    k, g, cg, h, wd = case
    rng = np.random.default_rng(k)
    x = rng.standard_normal((2, g * cg, h, wd))
    w = rng.standard_normal((2, g, k * k, h, wd))
    gout = rng.standard_normal((2, g * cg, h, wd))
    want = torch_run(T.involution_composite, x, w, k, 1, gout)
    for got in (torch_run(T.involution_custom, x, w, k, 1, gout), paddle_run(P.involution_custom, x, w, k, 1, gout)):
        for name, a, b in zip(("out", "grad x", "grad w"), got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11, err_msg=f"{name} {case}")
    x32, w32, g32 = (a.astype(np.float32) for a in (x, w, gout))
    want32 = torch_run(T.involution_composite, x32, w32, k, 1, g32)
    for got in (
        torch_run(T.involution_custom, x32, w32, k, 1, g32),
        paddle_run(P.involution_custom, x32, w32, k, 1, g32),
    ):
        for name, a, b in zip(("out", "grad x", "grad w"), got, want32, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"float32 {name} {case}")
    if case in GRADCHECKED:  # numeric gradients through the blocked kernels (fast_mode: random Jacobian projections)
        xt, wt = (torch.from_numpy(a[:1]).requires_grad_() for a in (x, w))
        assert torch.autograd.gradcheck(lambda a, b: T.involution_custom(a, b, k, 1), (xt, wt), fast_mode=True)
