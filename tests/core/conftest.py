from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
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


def fake_distribution(site, dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """An installed distribution as importlib.metadata finds one on sys.path: a ``.dist-info``
    folder with METADATA and entry_points.txt, beside its modules."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[mlx]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for name, code in modules.items():
        (site / f"{name}.py").write_text(code)


os.environ.pop("MLX_LOAD_PLUGINS", None)
# the tests' `mlx` subprocesses share one plugin cache of their own, never the user's
os.environ["MLX_CACHE_DIR"] = tempfile.mkdtemp(prefix="mlx-test-cache-")
atexit.register(shutil.rmtree, os.environ["MLX_CACHE_DIR"], True)
os.environ.pop("MLX_TRACE_PLUGINS", None)
