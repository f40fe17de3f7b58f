"""Shared fixtures: the two C++ operators, built once per user (cached) and loaded once per session.

The build cache is the plugin's per-user default (``~/.cache/mlx_custom_ops`` or
``$MLX_CUSTOM_OPS_CACHE``), so a second test session loads the operators without compiling.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from mlx_core.testing import device_under_test

# The test machine's few cores are shared: OpenMP teams of more than one thread spin against
# each other and make tiny models 10-50x slower. CLI subprocesses inherit this.
os.environ.setdefault("OMP_NUM_THREADS", "1")

#: nox's custom_ops-cuda session sets MLX_TEST_DEVICE=cuda. It installs the same paddlepaddle
#: wheel as the CPU session (a CPU build), so the Paddle runs stay on CPU (PADDLE_DEVICE).
DEVICE = device_under_test()
MLX = [sys.executable, "-m", "mlx_core"]
PADDLE_DEVICE = "cpu"

# A RedNet small enough for a CLI run in seconds on 2 shared cores.
TINY = [
    "data.image_size=32",
    "data.sample_classes=2",
    "data.sample_per_class=8",
    "data.sample_valid_per_class=4",
    "model.width=4",
    "model.stem_channels=8",
    "model.group_channels=4",
    "model.kernel_size=3",
    "train.epochs=1",
    "train.batch_size=8",
    "export.batch=2",
]


@pytest.fixture(scope="session")
def paddle_op():
    pytest.importorskip("paddle")
    from mlx_custom_ops.build import LAST_BUILD, ensure_paddle_op

    module = ensure_paddle_op()
    print(f"paddle op: {LAST_BUILD['paddle']}")
    return module


@pytest.fixture(scope="session")
def torch_op():
    pytest.importorskip("torch")
    from mlx_custom_ops.build import LAST_BUILD, ensure_torch_op

    ensure_torch_op()
    print(f"torch op: {LAST_BUILD['torch']}")
    return True


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def random_case(rng: np.random.Generator, dtype=np.float64):
    """x [B, C, H, W] and per-pixel kernels w [B, G, K*K, H/S, W/S] of a random valid geometry:
    odd and even spatial sizes, stride 1 or 2, 1-3 groups, odd kernel sizes 1-7."""
    s = int(rng.choice([1, 2]))
    k = int(rng.choice([1, 3, 5, 7]))
    g = int(rng.integers(1, 4))
    cg = int(rng.integers(1, 4))
    b = int(rng.integers(1, 3))
    h = int(rng.integers(1, 5)) * s + (int(rng.integers(0, 2)) * s if s == 1 else 0)
    w = int(rng.integers(1, 6)) * s
    if s == 1 and h % 2 == 0:
        h += 1  # keep odd sizes in the mix
    x = rng.standard_normal((b, g * cg, h, w)).astype(dtype)
    wt = rng.standard_normal((b, g, k * k, h // s, w // s)).astype(dtype)
    return x, wt, k, s
