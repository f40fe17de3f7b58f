"""The plugin through the CLI, as users run it: conformance, end-to-end runs of both backends,
resume, bad input (one ``error:`` line, exit code 2), and the operator build cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlx_core.runs import Manifest
from mlx_core.testing import PluginConformance, cli, one_line_error, run_dir_of, stage_process

from .conftest import DEVICE, PADDLE_DEVICE, TINY


@pytest.mark.lowest_core  # nox <plugin>-lowest-core runs these against the lowest core declared
class TestConformance(PluginConformance):
    plugin = "custom_ops"
    overrides = TINY


mlx = cli


def run_ok(tmp_path: Path, stage: str, *overrides: str, extra: tuple[str, ...] = (), device: str = DEVICE) -> Manifest:
    return Manifest.load(
        run_dir_of(stage_process("custom_ops", stage, tmp_path, [*TINY, *overrides], *extra, device=device))
    )


@pytest.mark.slow
def test_paddle_custom_end_to_end_and_resume(tmp_path):
    m = run_ok(tmp_path, "export", "model.backend=paddle", "model.impl=custom", device=PADDLE_DEVICE)
    assert m.data["records"]["trained"] is True
    exp = m.data["records"]["export"]
    assert exp["format"] == "paddle-inference" and exp["custom_op"] and exp["fresh_process"]
    assert exp["program_involution_ops"] == 9  # read from export/model.json: RedNet-26's stem + 8 bottlenecks
    assert exp["max_abs_diff"] <= 1e-4
    kinds = {a["kind"] for a in m.artifacts()}
    assert {"dataset", "checkpoint", "plot", "paddle-inference-model"} <= kinds
    assert (m.run_dir / "train" / "curve.png").read_bytes()[:4] == b"\x89PNG"
    # one more epoch, resumed from the last checkpoint of the same run
    proc = mlx(
        "run", "custom_ops", "train", "--from", str(m.run_dir), "--device", PADDLE_DEVICE, "--set", "train.epochs=2"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from epoch_0001.pdparams" in proc.stderr
    m2 = Manifest.load(m.run_dir)
    assert (m.run_dir / "checkpoints" / "epoch_0002.pdparams").is_file()
    assert [h["step"] for h in m2.stage("train")["history"]] == [1, 2]


@pytest.mark.slow
def test_torch_custom_end_to_end(tmp_path):
    m = run_ok(tmp_path, "export", "model.backend=torch", "model.impl=custom")
    exp = m.data["records"]["export"]
    assert exp["format"] == "torch.export"
    assert exp["graph_custom_ops"] == ["mlx_custom_ops.involution.default"]
    assert exp["max_abs_diff"] <= 1e-4
    assert (m.run_dir / "export" / "model.pt2").is_file()
    assert (m.run_dir / "checkpoints" / "epoch-001.pt").is_file()  # the engine's checkpoint (mlx_torch)


@pytest.mark.slow
def test_default_sample_is_learnable(tmp_path):
    """The default backend (Paddle, custom op) learns the generated sample well above chance (1/2)."""
    m = run_ok(
        tmp_path, "train", "data.sample_per_class=24", "data.sample_valid_per_class=8", "train.epochs=4",
        device=PADDLE_DEVICE,
    )  # fmt: skip
    assert m.data["metrics"]["val_acc"] >= 0.75, m.data["metrics"]


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["model.width=6"], "channels=6 is not divisible by group_channels=4"),
        (["model.kernel_size=4"], "kernel_size=4 must be odd"),
        (["data.image_size=40"], "data.image_size=40"),
        (["data.path=/nonexistent/flowers"], "/nonexistent/flowers"),
        (["model.depth=27"], "model.depth"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path, overrides, needle):
    proc = stage_process("custom_ops", "model", tmp_path, [*TINY, *overrides], device="cpu")
    one_line_error(proc, needle, during_run=True)


def test_missing_compiler_is_named(tmp_path):
    env = {"MLX_CUSTOM_OPS_CACHE": str(tmp_path / "cache"), "CXX": "/nonexistent/g++", "CC": "/nonexistent/gcc"}
    proc = stage_process("custom_ops", "model", tmp_path, [*TINY, "model.impl=custom", "model.backend=torch"],
                         device="cpu", env=env)  # fmt: skip
    one_line_error(proc, "no C++ compiler found", "/nonexistent/g++", during_run=True)


def test_missing_compiler_is_named_for_paddle(tmp_path):
    env = {"MLX_CUSTOM_OPS_CACHE": str(tmp_path / "cache"), "CXX": "/nonexistent/g++", "CC": "/nonexistent/gcc"}
    code = "from mlx_custom_ops.build import ensure_paddle_op\nensure_paddle_op()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert proc.returncode != 0
    assert "PluginError: cannot build the paddle involution operator: no C++ compiler found" in proc.stderr
    assert "'/nonexistent/gcc'" in proc.stderr


def test_operators_are_cached_not_rebuilt(paddle_op, torch_op):
    """A fresh process loads both operators from the per-user cache without compiling."""
    code = (
        "import json\nfrom mlx_custom_ops import build\n"
        "build.ensure_paddle_op(); build.ensure_torch_op()\nprint('LAST=' + json.dumps(build.LAST_BUILD))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("LAST="))[5:])
    assert last["paddle"]["built"] is False and last["torch"]["built"] is False
    assert last["paddle"]["seconds"] < 5 and last["torch"]["seconds"] < 5


def test_plugin_import_is_light():
    code = (
        "import sys, mlx_custom_ops\ninfo = mlx_custom_ops.mlx_plugin()\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'paddle', 'transformers', 'numpy')]\n"
        "print(info.name, heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "custom_ops []", proc.stderr[-2000:]


def test_data_stage_reads_a_user_folder(tmp_path):
    from mlx_custom_ops.sample import write_sample

    root = write_sample(tmp_path / "flowers", classes=3, per_class=4, valid_per_class=2, size=24, seed=1)
    m = run_ok(tmp_path / "runs", "data", f"data.path={root}")
    assert m.data["metrics"]["classes"] == 3 and m.data["metrics"]["train_images"] == 12
