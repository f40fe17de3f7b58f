"""Helpers shared by the segmentation tests: the tiny config and CLI wrappers."""

from __future__ import annotations

import os
from pathlib import Path

from mlx_core.testing import cli

DEVICE = "cuda" if os.environ.get("MLX_TEST_DEVICE") == "cuda" else "cpu"

# the smallest config that still goes through every stage: 32x32 inputs, 8 train / 4 val images
TINY = [
    "data.image_size=32",
    "data.sample_train=8",
    "data.sample_val=4",
    "train.batch_size=4",
    "train.epochs=1",
]


def sets(*overrides: str) -> list[str]:
    out: list[str] = []
    for o in overrides:
        out += ["--set", o]
    return out


def run(stage: str, runs: Path, *overrides: str, extra: tuple[str, ...] = ()):
    """``mlx run segmentation STAGE`` in a subprocess with the tiny config plus ``overrides``."""
    return cli(
        "run", "segmentation", stage, "--runs-dir", str(runs), "--device", DEVICE, *sets(*TINY, *overrides), *extra
    )


def run_dir_of(proc) -> Path:
    return Path(proc.stdout.strip().splitlines()[-1])


def one_error_line(proc) -> str:
    """The single ``error: ...`` line a bad input must produce (exit code 2, no traceback)."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]
