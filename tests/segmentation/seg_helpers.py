"""Helpers shared by the segmentation tests: the tiny config and CLI wrappers."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from mlx_core.testing import device_under_test, one_line_error, run_dir_of, sets, stage_process

__all__ = ["DEVICE", "TINY", "one_error_line", "run", "run_dir_of", "sets"]

DEVICE = "cuda" if device_under_test() == "cuda" else "cpu"

# the smallest config that still goes through every stage: 32x32 inputs, 8 train / 4 val images
TINY = [
    "data.image_size=32",
    "data.sample_train=8",
    "data.sample_val=4",
    "train.batch_size=4",
    "train.epochs=1",
]


def run(stage: str, runs: Path, *overrides: str, extra: tuple[str, ...] = ()):
    """``mlx run segmentation STAGE`` in a subprocess with the tiny config plus ``overrides``."""
    return stage_process("segmentation", stage, runs, [*TINY, *overrides], *extra, device=DEVICE)


#: the single ``error: ...`` line a bad input must produce (exit code 2, no traceback), the last line
one_error_line = partial(one_line_error, during_run=True)
