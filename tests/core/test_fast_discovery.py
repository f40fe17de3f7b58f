"""`mlx plugins list` must not import heavy libraries (checked in a fresh interpreter)."""

from __future__ import annotations

from mlx_core.testing import heavy_imports


def test_plugins_list_imports_no_heavy_library():
    assert heavy_imports("plugins", "list") == []


def test_models_list_imports_no_heavy_library():
    assert heavy_imports("models", "list") == []
