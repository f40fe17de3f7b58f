"""The cross-plugin data contract (``mlx_core.contract``): RedNet inputs and class ids of the
run's images, for plugins that process this plugin's model (quant calibrates and scores on them)."""

from __future__ import annotations

from typing import Any


def examples(ctx, data, n: int, split: str) -> list[tuple[tuple[Any, ...], Any]]:
    """Up to ``n`` single-image batches ``((x [1,3,H,W] float32,), label [1] int64)``:
    ``calibration`` from the training images, ``eval`` from the held-out ``valid`` ones."""
    import torch

    part = data.train if split == "calibration" else data.valid
    k = min(n, len(part))
    x = torch.from_numpy(part.normalized(slice(0, k)))
    y = torch.from_numpy(part.labels[:k].astype("int64"))
    return [((x[i : i + 1],), y[i : i + 1]) for i in range(k)]
