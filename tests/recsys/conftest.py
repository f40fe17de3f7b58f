"""Shared helpers: tiny configs and a subprocess runner for the `mlx` CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mlx_core.testing import cli, device_under_test, run_dir_of, stage_process

#: nox's recsys-cuda session sets MLX_TEST_DEVICE=cuda (training itself stays on gloo/CPU and says so)
DEVICE = device_under_test()

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
    return cli(*args, timeout=timeout)


def run(
    stage: str, runs_dir: Path, *sets: str, extra: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return stage_process("recsys", stage, runs_dir, sets, *extra, device=DEVICE, env=env, timeout=600)


def run_ok(stage: str, runs_dir: Path, *sets: str, extra: tuple[str, ...] = ()) -> tuple[Path, dict]:
    run_dir = run_dir_of(run(stage, runs_dir, *sets, extra=extra))
    return run_dir, json.loads((run_dir / "run.json").read_text())


def line(label: str = "1", ints: list[str] | None = None, cats: list[str] | None = None) -> str:
    """One Criteo-format TSV line (label, 13 integers, 26 hex categoricals)."""
    ints = ints if ints is not None else ["1"] * 13
    cats = cats if cats is not None else [""] * 26
    return "\t".join([label, *ints, *cats]) + "\n"


# 2 gloo processes (the core launcher: torch.distributed.run) with planner constraints; the
# 1-process path is the resume test's
TWO_PROCESSES = [
    "train.allow_oversubscribe=true",
    'train.sharding={product_table="row_wise",user_table=["column_wise"]}',
]
NPROC_2 = ("--nproc", "2")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> tuple[Path, dict]:
    """One tiny 2-process run through export, shared by the tests that inspect its outputs."""
    runs = tmp_path_factory.mktemp("runs")
    return run_ok("export", runs, *TINY, *TWO_PROCESSES, "train.epochs=2", "data.examples=6000", extra=NPROC_2)
