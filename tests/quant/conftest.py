from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from mlx_core.testing import cli

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the tiny domain plugin tinyseg.py used by the PTQ tests

os.environ.pop("MLX_LOAD_PLUGINS", None)
os.environ.pop("MLX_TRACE_PLUGINS", None)

#: nox's quant-cuda session sets MLX_TEST_DEVICE=cuda
DEVICE = os.environ.get("MLX_TEST_DEVICE", "cpu")

# the smallest LM config that still exercises every code path
TINY = ["model.hidden_size=32", "model.ffn_dim=64", "model.layers=2", "data.documents=24", "data.seq_len=32",
        "data.max_eval_windows=4", "export.latency_repeats=1"]  # fmt: skip


def one_line_error(proc, during_run: bool = False) -> str:
    """Exit 2, no traceback, exactly one 'error: ' line, and it is the last line."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr[-3000:]
    if not during_run:
        assert len(lines) == 1, proc.stderr[-3000:]
    return errors[0]


def run_quant(runs: Path, stage: str, *sets: str, extra: tuple[str, ...] = ()):
    args = ["run", "quant", stage, "--runs-dir", str(runs), "--device", DEVICE]
    for s in (*TINY, *sets):
        args += ["--set", s]
    return cli(*args, *extra)


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
    from rich.console import Console

    from mlx_core import runner

    def _run(plugin: str, stage: str, overrides: list[str]):
        console = Console(file=io.StringIO(), stderr=False)
        return runner.run(registry, plugin, stage, overrides=overrides, runs_dir=tmp_path / "runs", device=DEVICE,
                          console=console)  # fmt: skip

    return _run
