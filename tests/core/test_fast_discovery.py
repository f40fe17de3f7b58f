"""`mlx plugins list` must not import heavy libraries (checked in a fresh interpreter)."""

from __future__ import annotations

from mlx_core.testing import heavy_imports, imported_packages


def test_plugins_list_imports_no_heavy_library():
    assert heavy_imports("plugins", "list") == []


def test_models_list_imports_no_heavy_library():
    assert heavy_imports("models", "list") == []


def test_plugins_list_and_version_skip_the_typer_app():
    # the fast entry path answers these two without building the full CLI (see benchmarks/core.py)
    for argv in (("plugins", "list"), ("plugins", "list", "--json"), ("--version",)):
        assert "typer" not in imported_packages(*argv), argv
    assert "typer" in imported_packages("plugins", "info", "linreg")  # the check itself can see typer
