"""Shared helpers: tiny configs and a subprocess runner for the `mlx` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: nox's recsys-cuda session sets MLX_TEST_DEVICE=cuda (training itself stays on gloo/CPU and says so)
DEVICE = os.environ.get("MLX_TEST_DEVICE", "cpu")

DIM = 8
TABLES = (
    "model.tables=["
    f'{{name="product_table",embedding_dim={DIM},num_embeddings=512,feature_names=["product","history"]}},'
    f'{{name="user_table",embedding_dim={DIM},num_embeddings=256,feature_names=["user"]}},'
    f'{{name="category_table",embedding_dim={DIM},num_embeddings=16,feature_names=["category"]}}]'
)
# a few seconds per stage on a shared 2-core machine
TINY = [
    "data.examples=3000", "data.users=100", "data.products=300", "data.categories=10", "data.batch_size=64",
    TABLES, "model.dense_arch=[16]", "model.over_arch=[16]", "train.epochs=1", "train.sparse_lr=0.1", "train.dense_lr=0.01",
]  # fmt: skip


def mlx(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlx_core", *args], capture_output=True, text=True, timeout=timeout)


def run(stage: str, runs_dir: Path, *sets: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    args = ["run", "recsys", stage, "--runs-dir", str(runs_dir), "--device", DEVICE, *extra]
    for s in sets:
        args += ["--set", s]
    return mlx(*args)


def run_ok(stage: str, runs_dir: Path, *sets: str, extra: tuple[str, ...] = ()) -> tuple[Path, dict]:
    proc = run(stage, runs_dir, *sets, extra=extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    return run_dir, json.loads((run_dir / "run.json").read_text())


def line(label: str = "1", ints: list[str] | None = None, cats: list[str] | None = None) -> str:
    """One Criteo-format TSV line (label, 13 integers, 26 hex categoricals)."""
    ints = ints if ints is not None else ["1"] * 13
    cats = cats if cats is not None else [""] * 26
    return "\t".join([label, *ints, *cats]) + "\n"


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


# 2 gloo processes (elastic launcher) with planner constraints; the 1-process path is the resume test's
TWO_PROCESSES = [
    "train.nproc=2", "train.allow_oversubscribe=true",
    'train.sharding={product_table="row_wise",user_table=["column_wise"]}',
]  # fmt: skip


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> tuple[Path, dict]:
    """One tiny 2-process run through export, shared by the tests that inspect its outputs."""
    runs = tmp_path_factory.mktemp("runs")
    return run_ok("export", runs, *TINY, *TWO_PROCESSES, "train.epochs=2", "data.examples=6000")
