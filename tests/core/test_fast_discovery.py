"""`mlx plugins list` must not import heavy libraries (checked in a fresh interpreter)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

from mlx_core import PluginInfo
from mlx_core.testing import cli, heavy_imports, imported_packages

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


# --- the plugin cache (mlx_core.plugin_cache) ------------------------------------------------------
FLAKY_PLUGIN = """import os
from mlx_core import PluginInfo, hookimpl

with open(os.environ["FLAKY_MARKER"], "a") as fh:  # one line per import: the cache imports nothing
    fh.write("imported\\n")


@hookimpl
def mlx_plugin():
    return PluginInfo(name="flaky", summary="fine for now", stages=(), profiler="none")
"""
BROKEN_FLAKY = "import mlx_core_has_no_such_module_anymore\n"
OTHER_PLUGIN = FLAKY_PLUGIN.replace("flaky", "other").replace("fine for now", "installed later")


def _age(folder, seconds: float = 60.0) -> None:
    """Date every file back: the cache does not trust files changed in the last two seconds."""
    past = time.time() - seconds
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (past, past))


def _listed(env) -> dict[str, dict]:
    proc = cli("plugins", "list", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return {row["name"]: row for row in json.loads(proc.stdout)}


def test_the_cache_answers_without_imports_and_sees_a_plugin_break(tmp_path):
    site, marker, cache = tmp_path / "site", tmp_path / "imports.txt", tmp_path / "cache"
    fake_distribution(site, "mlx-flaky", "0.1", {"flaky": "flaky_plugin"}, {"flaky_plugin": FLAKY_PLUGIN})
    _age(site)
    env = {"PYTHONPATH": str(site), "FLAKY_MARKER": str(marker), "MLX_CACHE_DIR": str(cache)}
    first = _listed(env)
    assert first["flaky"]["status"] == "ok" and marker.read_text().count("imported") == 1
    assert len(list(cache.iterdir())) == 1  # written (atomically: no temporary file left)
    # every PluginInfo field is in the row, read generically (a field added later shows up too)
    assert {f.name for f in dataclasses.fields(PluginInfo)} <= set(first["flaky"])
    again = _listed(env)
    assert again == first and marker.read_text().count("imported") == 1  # from the cache
    table = cli("plugins", "list", env=env)
    assert "flaky" in table.stdout and marker.read_text().count("imported") == 2  # a table: rendered once
    cli("plugins", "list", env=env)
    assert marker.read_text().count("imported") == 2
    # the cached path imports none of the core's libraries (nor typer, nor any plugin); the
    # first call warms the cache for `python -c` (another sys.path[0], another cache file)
    assert "pydantic" in imported_packages("plugins", "list", env=env)
    hot = set(imported_packages("plugins", "list", env=env)) | set(imported_packages("--version", env=env))
    assert not hot & {"pydantic", "pluggy", "rich", "typer", "flaky_plugin", "importlib_metadata"}, hot
    # the plugin breaks after the cache was written: listed as broken, not as the cached "ok"
    (site / "flaky_plugin.py").write_text(BROKEN_FLAKY)
    broken = _listed(env)["flaky"]
    assert broken["status"] == "broken" and "mlx_core_has_no_such_module_anymore" in broken["reason"]
    # a distribution installed since is listed (a new .dist-info folder on sys.path)
    fake_distribution(site, "mlx-other", "0.2", {"other": "other_plugin"}, {"other_plugin": OTHER_PLUGIN})
    assert _listed(env)["other"]["summary"] == "installed later"
    # and switched off, it neither reads nor writes
    off = tmp_path / "off"
    assert _listed({**env, "MLX_PLUGIN_CACHE": "0", "MLX_CACHE_DIR": str(off)})["other"]["status"] == "ok"
    assert not off.exists()


def test_concurrent_listings_leave_one_whole_cache_file(tmp_path):
    site, marker, cache = tmp_path / "site", tmp_path / "imports.txt", tmp_path / "cache"
    fake_distribution(site, "mlx-flaky", "0.1", {"flaky": "flaky_plugin"}, {"flaky_plugin": FLAKY_PLUGIN})
    _age(site)
    env = {**os.environ, "PYTHONPATH": str(site), "FLAKY_MARKER": str(marker), "MLX_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-m", "mlx_core", "plugins", "list", "--json"]
    cwd = tmp_path / "cwd"  # `python -m` puts the working folder on sys.path: one that stays empty
    cwd.mkdir()
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd) for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    assert len({o for o, _ in outs}) == 1  # every writer listed the same
    (written,) = cache.iterdir()  # one file, no temporary left over
    imports = marker.read_text().count("imported")
    assert subprocess.run(cmd, env=env, capture_output=True, cwd=cwd).returncode == 0
    assert marker.read_text().count("imported") == imports  # a later listing reads that file whole
