"""`mlx plugins new`: the generated package installs, passes its own tests and runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlx_core.testing import one_line_error

CORE = Path(__file__).resolve().parents[2] / "core"


def make_venv(path: Path) -> Path:
    """A fresh venv (uv when available: seconds, not minutes)."""
    if shutil.which("uv"):
        subprocess.run(["uv", "venv", "-q", "-p", sys.executable, str(path)], check=True)
    else:
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path / "bin" / "python"


def install(python: Path, *args: str) -> None:
    if shutil.which("uv"):
        cmd = ["uv", "pip", "install", "-q", "--python", str(python), *args]
    else:
        cmd = [str(python), "-m", "pip", "install", "-q", *args]
    subprocess.run(cmd, check=True)


def test_new_plugin_installs_tests_and_runs_in_fresh_venv(tmp_path, mlx):
    proc = mlx("plugins", "new", "weather", "--dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    pkg = tmp_path / "mlx-weather"
    assert (pkg / "pyproject.toml").is_file() and (pkg / "src" / "mlx_weather" / "__init__.py").is_file()
    assert 'weather = "mlx_weather"' in (pkg / "pyproject.toml").read_text()

    python = make_venv(tmp_path / "venv")
    install(python, str(CORE), "-e", f"{pkg}[test]")  # as docs/plugins.md says: [test] brings pytest
    env = {k: v for k, v in os.environ.items() if k not in ("MLX_LOAD_PLUGINS", "PYTHONPATH")}
    tests = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(pkg / "tests")],
        capture_output=True,
        text=True,
        cwd=pkg,
        env=env,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in tests.stdout

    listed = subprocess.run(
        [str(python), "-m", "mlx_core", "plugins", "list", "--json"], capture_output=True, text=True, env=env
    )
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {"weather"} and rows["weather"]["status"] == "ok"

    run = subprocess.run(
        [str(python), "-m", "mlx_core", "run", "weather", "export", "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    manifest = json.loads((Path(run.stdout.strip().splitlines()[-1]) / "run.json").read_text())
    assert manifest["stages"]["export"]["status"] == "completed"
    assert manifest["metrics"]["val_accuracy"] > 0.9


@pytest.mark.parametrize("name", ["Bad-Name", "1abc", "class", "x"])
def test_new_rejects_bad_names(tmp_path, mlx, name):
    line = one_line_error(mlx("plugins", "new", name, "--dir", str(tmp_path)))
    assert repr(name) in line
    assert list(tmp_path.iterdir()) == []


def test_new_refuses_to_overwrite(tmp_path, mlx):
    assert mlx("plugins", "new", "twice", "--dir", str(tmp_path)).returncode == 0
    marker = tmp_path / "mlx-twice" / "README.md"
    before = marker.read_text()
    line = one_line_error(mlx("plugins", "new", "twice", "--dir", str(tmp_path)))
    assert "already exists" in line
    assert marker.read_text() == before


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("core", "is reserved"),
        ("mlx", "is reserved"),
        ("linreg", "the installed plugin 'linreg' (mlx-testplugins)"),  # an installed plugin's name
        ("testplugins", "the distribution mlx-testplugins is installed"),  # its package, not a plugin name
    ],
)
def test_new_refuses_reserved_and_taken_names(tmp_path, mlx, name, fragment):
    line = one_line_error(mlx("plugins", "new", name, "--dir", str(tmp_path)))
    assert repr(name) in line and fragment in line
    assert list(tmp_path.iterdir()) == []
