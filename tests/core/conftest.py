from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlx_core.testing import cli


@pytest.fixture
def mlx():
    return cli


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def linreg_run(runs: Path):
    """A finished linreg export run (its run directory)."""
    proc = cli("run", "linreg", "export", "--runs-dir", str(runs), "--set", "train.epochs=50")
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1])


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


os.environ.pop("MLX_LOAD_PLUGINS", None)
os.environ.pop("MLX_TRACE_PLUGINS", None)
