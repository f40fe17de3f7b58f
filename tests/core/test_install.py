"""`mlx plugins install / uninstall / freeze`, dry runs and one real round trip in a fresh venv."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from mlx_core.install import find_checkout
from mlx_core.testing import one_line_error

from .test_scaffold import CORE, install, make_venv


def fake_checkout(root: Path, mlx) -> Path:
    (root / "core").mkdir(parents=True)
    (root / "core" / "pyproject.toml").write_text("[project]\nname = 'mlx-core'\n")
    (root / "plugins").mkdir()
    assert mlx("plugins", "new", "weather", "--dir", str(root / "plugins")).returncode == 0
    (root / "plugins" / "mlx-weather").rename(root / "plugins" / "weather")
    pyproject = root / "plugins" / "weather" / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'hardware = ["cpu"]',
            'hardware = ["cpu"]\nextras = { cpu = "test" }\nafter = { cpu = [["uninstall", "nothing-here"]] }',
        )
    )
    return root


def test_find_checkout_walks_up(tmp_path, mlx):
    root = fake_checkout(tmp_path / "repo", mlx)
    assert find_checkout(root / "plugins" / "weather" / "src") == root
    assert find_checkout(tmp_path) is None


def test_install_dry_run_uses_checkout_extras_and_steps(tmp_path, mlx):
    root = fake_checkout(tmp_path / "repo", mlx)
    proc = mlx("plugins", "install", "weather", "--hardware", "cpu", "--dry-run", cwd=root)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert " install " in lines[0] and f"{root / 'plugins' / 'weather'}[test]" in lines[0]
    assert "uninstall" in lines[1] and "nothing-here" in lines[1]


def test_install_refuses_unsupported_hardware_and_unknown_plugin(tmp_path, mlx):
    root = fake_checkout(tmp_path / "repo", mlx)
    line = one_line_error(mlx("plugins", "install", "weather", "--hardware", "cuda", "--dry-run", cwd=root))
    assert "does not support cuda" in line
    line = one_line_error(mlx("plugins", "install", "wether", "--dry-run", cwd=root))
    assert "'wether'" in line and "weather" in line
    line = one_line_error(mlx("plugins", "install", "weather", "--hardware", "tpu", "--dry-run", cwd=root))
    assert "'tpu'" in line


def test_install_outside_checkout_uses_index_names(tmp_path, mlx):
    proc = mlx("plugins", "install", "custom_ops", "--hardware", "cpu", "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert " install " in proc.stderr and "mlx-custom-ops[cpu]" in proc.stderr


def test_bad_lock_file_is_one_line_error(tmp_path, mlx):
    bad = tmp_path / "lock.toml"
    bad.write_text("x = 1\n")
    assert "not an mlx plugin lock file" in one_line_error(mlx("plugins", "install", "-r", str(bad), "--dry-run"))
    assert "does not exist" in one_line_error(mlx("plugins", "install", "-r", str(tmp_path / "none.toml")))


def test_install_freeze_uninstall_restore_round_trip(tmp_path, mlx):
    root = fake_checkout(tmp_path / "repo", mlx)
    python = make_venv(tmp_path / "venv")
    install(python, str(CORE))
    env = {k: v for k, v in os.environ.items() if k != "MLX_LOAD_PLUGINS"}
    env["PATH"] = f"{python.parent}{os.pathsep}{env['PATH']}"

    def mlx_in_venv(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(python), "-m", "mlx_core", *args], cwd=root, capture_output=True, text=True, env=env)

    def names() -> dict:
        return {r["name"]: r["status"] for r in json.loads(mlx_in_venv("plugins", "list", "--json").stdout)}

    assert names() == {}
    proc = mlx_in_venv("plugins", "install", "weather", "--hardware", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert names() == {"weather": "ok"}

    lock = tmp_path / "mlx-plugins.lock.toml"
    assert mlx_in_venv("plugins", "freeze", "-o", str(lock)).returncode == 0
    text = lock.read_text()
    assert 'name = "weather"' in text and 'distribution = "mlx-weather"' in text and 'version = "0.1.0"' in text
    assert "[environment]" in text and "torch_cuda" in text

    assert mlx_in_venv("plugins", "uninstall", "weather").returncode == 0
    assert names() == {}
    proc = mlx_in_venv("plugins", "install", "-r", str(lock))
    assert proc.returncode == 0, proc.stderr
    assert names() == {"weather": "ok"}
