"""The cross-plugin data contract (``mlx_core.contract``): DeepLabV3 inputs and masks of the
run's data, for plugins that process this plugin's model (quant calibrates and scores on them)."""

from __future__ import annotations

from typing import Any


def examples(ctx, data, n: int, split: str) -> list[tuple[tuple[Any, ...], Any]]:
    """Up to ``n`` single-image batches ``((image [1,3,S,S] float32,), mask [1,S,S] int64, 255 =
    ignore)``: ``calibration`` from the (augmented) training split, ``eval`` from the val split."""
    import torch

    ds = data.train if split == "calibration" else data.val
    out = []
    for i in range(min(n, len(ds))):
        image, mask = ds[i]
        out.append(((torch.from_numpy(image)[None],), torch.from_numpy(mask)[None]))
    return out
