"""What a plugin declares about its libraries: the profiler ``--profile`` uses, and the versions
``run.json`` records."""

from __future__ import annotations

import importlib.metadata as md
import json
from pathlib import Path

import pytest

from mlx_core import PluginInfo
from mlx_core.runs import declared_versions


@pytest.mark.parametrize(
    "requires, profiler",
    [
        ((), "none"),
        (("sklearn",), "none"),
        (("torch", "numpy"), "torch"),
        (("paddle",), "paddle"),
        (("paddle", "torch"), "torch"),
    ],
)
def test_default_profiler_follows_requires(requires, profiler):
    assert PluginInfo(name="p", summary="s", requires=requires).profiler == profiler


def test_an_explicit_profiler_is_kept_and_an_unknown_one_is_a_problem():
    assert PluginInfo(name="p", summary="s", requires=("torch",), profiler="none").profiler == "none"
    problems = PluginInfo(name="p", summary="s", profiler="jax").problems()  # type: ignore[arg-type]
    assert any("profiler 'jax'" in p for p in problems)


def test_profile_of_a_plugin_without_torch_needs_no_torch(mlx, tmp_path):
    blocked = tmp_path / "blocked" / "torch"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('torch is not installed here')\n")
    proc = mlx(
        "run", "declares_libs", "data", "--profile", "--runs-dir", str(tmp_path / "runs"),
        env={"PYTHONPATH": str(blocked.parent)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    m = json.loads((Path(proc.stdout.strip().splitlines()[-1]) / "run.json").read_text())
    assert m["stages"]["data"]["status"] == "completed"


def test_run_json_records_the_versions_of_declared_libraries(mlx, tmp_path):
    proc = mlx("run", "declares_libs", "data", "--runs-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    m = json.loads((Path(proc.stdout.strip().splitlines()[-1]) / "run.json").read_text())
    assert m["versions"]["tomli_w"] == md.version("tomli-w")  # not one of the fixed tracked libraries


def test_declared_versions_maps_import_names_to_distributions():
    pillow = pytest.importorskip("PIL") and md.version("pillow")
    assert declared_versions(("PIL", "tomli_w", "mlx_no_such_library_xyz")) == {
        "PIL": pillow,
        "tomli_w": md.version("tomli-w"),
    }


def test_ctx_manifest_holds_what_an_earlier_invocation_recorded(mlx, tmp_path):
    first = mlx("run", "declares_libs", "data", "--runs-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    run_dir = Path(first.stdout.strip().splitlines()[-1])
    again = mlx("run", "declares_libs", "data", "--from", str(run_dir))
    assert again.returncode == 0, again.stderr
    assert json.loads((run_dir / "run.json").read_text())["records"]["data_invocations"] == 2


def test_runs_dir_defaults_to_mlx_runs_dir(mlx, tmp_path):
    proc = mlx("run", "declares_libs", "data", env={"MLX_RUNS_DIR": str(tmp_path / "elsewhere")}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip().splitlines()[-1]).parent == (tmp_path / "elsewhere" / "declares_libs").resolve()
    assert not (tmp_path / "runs").exists()
