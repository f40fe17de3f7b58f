from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from mlx_core.testing import device_under_test, run_in_process, stage_process

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the tiny domain plugin tinyseg.py used by the PTQ tests

os.environ.pop("MLX_LOAD_PLUGINS", None)
os.environ.pop("MLX_TRACE_PLUGINS", None)

#: nox's quant-cuda session sets MLX_TEST_DEVICE=cuda
DEVICE = device_under_test()

# the smallest LM config that still exercises every code path
TINY = ["model.hidden_size=32", "model.ffn_dim=64", "model.layers=2", "data.documents=24", "data.seq_len=32",
        "data.max_eval_windows=4", "export.latency_repeats=1"]  # fmt: skip


def run_quant(runs: Path, stage: str, *sets: str, extra: tuple[str, ...] = ()):
    return stage_process("quant", stage, runs, [*TINY, *sets], *extra, device=DEVICE)


@pytest.fixture
def registry():
    """A registry with quant and the tiny test domain plugin registered by hand (in-process)."""
    import mlx_quant
    import tinyseg

    from mlx_core.plugins import OK, PluginRecord, Registry

    reg = Registry(load=False)
    reg.register(tinyseg, PluginRecord(name="tinyseg", status=OK))
    reg.register(mlx_quant, PluginRecord(name="quant", status=OK))
    assert reg.records["tinyseg"].usable and reg.records["quant"].usable
    return reg


@pytest.fixture
def run_inproc(registry, tmp_path):
    def _run(plugin: str, stage: str, overrides: list[str]):
        return run_in_process(registry, plugin, stage, tmp_path / "runs", overrides, device=DEVICE)

    return _run
