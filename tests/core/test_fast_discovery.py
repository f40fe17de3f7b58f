"""`mlx plugins list` must not import heavy libraries (checked in a fresh interpreter)."""

from __future__ import annotations

from mlx_core.testing import heavy_imports, imported_packages

from .conftest import fake_distribution


def test_plugins_list_imports_no_heavy_library():
    assert heavy_imports("plugins", "list") == []


def test_models_list_imports_no_heavy_library():
    assert heavy_imports("models", "list") == []


def test_plugins_list_and_version_skip_the_typer_app():
    # the fast entry path answers these two without building the full CLI (see benchmarks/core.py)
    for argv in (("plugins", "list"), ("plugins", "list", "--json"), ("--version",)):
        assert "typer" not in imported_packages(*argv), argv
    assert "typer" in imported_packages("plugins", "info", "linreg")  # the check itself can see typer


# A library not in any list of known heavy ones, whose import costs at least 0.6 s of its own
# (a lower bound: a busy machine only makes it slower), and a plugin that imports it at the top.
SLOW_LIBRARY = "import time\n_end = time.perf_counter() + 0.6\nwhile time.perf_counter() < _end:\n    pass\n"
SLOW_PLUGIN = """import slowlib_for_tests
from mlx_core import PluginInfo, hookimpl


@hookimpl
def mlx_plugin():
    return PluginInfo(name="slowpoke", summary="imports a slow library at the top", stages=())
"""


def test_a_slow_import_is_heavy_whatever_its_name(tmp_path):
    site = tmp_path / "site"
    fake_distribution(
        site, "mlx-slowpoke", "0.1", {"slowpoke": "slowpoke_plugin"},
        {"slowpoke_plugin": SLOW_PLUGIN, "slowlib_for_tests": SLOW_LIBRARY},
    )  # fmt: skip
    env = {"PYTHONPATH": str(site), "MLX_LOAD_PLUGINS": "slowpoke"}
    assert heavy_imports("plugins", "list", env=env) == ["slowlib_for_tests"]
    # the core's own imports (pydantic, rich, ...) are never the plugin's fault
    assert heavy_imports("plugins", "list", env={"MLX_LOAD_PLUGINS": "linreg"}) == []
