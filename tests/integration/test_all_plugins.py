"""Every plugin of the checkout installed together (nox -s integration)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib

from mlx_core.hardware import has_cuda
from mlx_core.testing import cli, heavy_imports

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = {
    p.parent.name: tomllib.loads(p.read_text()).get("tool", {}).get("mlx", {}).get("nox", {}).get("hardware", ["cpu"])
    for p in sorted(ROOT.glob("plugins/*/pyproject.toml"))
}
HARDWARE = "cuda" if has_cuda() else "cpu"


def listed() -> dict[str, dict]:
    proc = cli("plugins", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    return {r["name"]: r for r in json.loads(proc.stdout)}


@pytest.mark.parametrize("name", [n for n, hw in PLUGINS.items() if HARDWARE in hw])
def test_every_plugin_is_installed_and_ok(name):
    row = listed().get(name)
    assert row is not None, f"{name} is not installed"
    assert row["status"] == "ok", row


def test_listing_everything_imports_no_heavy_library():
    assert len(listed()) >= len([n for n, hw in PLUGINS.items() if HARDWARE in hw])
    assert heavy_imports("plugins", "list") == []
    assert heavy_imports("models", "list") == []


def test_doctor_covers_every_plugin():
    proc = cli("doctor", "--json")
    assert proc.returncode == 0, proc.stderr
    names = {p["name"] for p in json.loads(proc.stdout)["plugins"]}
    assert set(n for n, hw in PLUGINS.items() if HARDWARE in hw) <= names
