"""Discovery through the real `mlx` entry-point group (tests/core/testplugins is installed)."""

from __future__ import annotations

import json

import pytest

from mlx_core.hardware import has_cuda

from .conftest import fake_distribution


def listed(mlx, **env) -> dict[str, dict]:
    proc = mlx("plugins", "list", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return {row["name"]: row for row in json.loads(proc.stdout)}


def test_good_plugins_are_ok(mlx):
    rows = listed(mlx)
    assert rows["linreg"]["status"] == "ok"
    assert rows["linreg"]["stages"] == ["data", "model", "train", "export"]
    assert rows["linreg"]["predict"] is True
    assert rows["linreg"]["version"] == "0.4.0"  # read from the distribution's metadata
    assert rows["stamp"]["status"] == "ok"


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("broken_import", "import failed: ModuleNotFoundError"),
        ("no_describe", "does not implement mlx_plugin()"),
        ("bad_signature", "dataset_path"),
        ("wrong_name", "describes itself as 'somebody_else'"),
    ],
)
def test_broken_plugins_are_listed_with_reason(mlx, name, fragment):
    row = listed(mlx)[name]
    assert row["status"] == "broken"
    assert fragment in row["reason"]


def test_incompatible_api_names_both_versions(mlx):
    from mlx_core import API_VERSION, __version__

    row = listed(mlx)["future_api"]
    assert row["status"] == "broken"
    assert "incompatible" in row["reason"] and ">=2,<3" in row["reason"]
    assert API_VERSION in row["reason"] and __version__ in row["reason"]


@pytest.mark.skipif(has_cuda(), reason="this machine has a GPU")
def test_cuda_only_plugin_is_unavailable_here(mlx):
    row = listed(mlx)["cuda_only"]
    assert row["status"] == "unavailable here"
    assert "no NVIDIA GPU" in row["reason"]


def test_missing_library_makes_plugin_unavailable(mlx):
    row = listed(mlx)["needs_lib"]
    assert row["status"] == "unavailable here"
    assert "mlx_no_such_library_xyz" in row["reason"]


def test_broken_plugin_does_not_take_other_commands_down(mlx, tmp_path):
    proc = mlx("run", "linreg", "data", "--runs-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr


def test_using_a_broken_plugin_is_one_line_error(mlx):
    from mlx_core.testing import one_line_error

    line = one_line_error(mlx("run", "broken_import", "data"))
    assert "broken" in line and "import failed" in line


def test_allow_list_loads_only_named_plugins(mlx):
    rows = listed(mlx, MLX_LOAD_PLUGINS="linreg")
    assert rows["linreg"]["status"] == "ok"
    # broken_import is not even imported: it is disabled, not broken
    assert rows["broken_import"]["status"] == "disabled"
    assert {r["status"] for n, r in rows.items() if n != "linreg"} == {"disabled"}


def test_empty_allow_list_loads_none(mlx):
    rows = listed(mlx, MLX_LOAD_PLUGINS="")
    assert {r["status"] for r in rows.values()} == {"disabled"}


def test_trace_logs_hook_calls_and_implementations(mlx, tmp_path):
    proc = mlx(
        "run", "linreg", "export", "--runs-dir", str(tmp_path), "--set", "train.epochs=5",
        env={"MLX_TRACE_PLUGINS": "1", "MLX_LOAD_PLUGINS": "linreg,stamp"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "mlx trace: mlx_export -> " in proc.stderr
    line = next(x for x in proc.stderr.splitlines() if x.startswith("mlx trace: mlx_export ->"))
    assert "stamp (wrapper)" in line and "linreg" in line


def test_plugins_info_shows_schema(mlx):
    proc = mlx("plugins", "info", "linreg", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    keys = {row["key"]: row for row in info["config"]}
    assert keys["train.epochs"]["type"] == "int" and keys["train.epochs"]["default"] == 200
    assert keys["train.epochs"]["description"]
    assert keys["export.format"]["type"] == "'json'"
    assert info["location"].endswith("linreg.py")
    text = mlx("plugins", "info", "stamp")
    assert text.returncode == 0 and "stamp.enabled" in text.stdout


def test_doctor_reports_every_plugin(mlx):
    proc = mlx("doctor", "--json")
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    plugins = {p["name"]: p for p in facts["plugins"]}
    assert plugins["linreg"]["can_run_here"] is True
    assert plugins["needs_lib"]["can_run_here"] is False and plugins["needs_lib"]["reason"]
    assert facts["cuda_available"] == has_cuda()
    assert "pluggy" in facts["libraries"]


def test_version(mlx):
    from mlx_core import __version__

    proc = mlx("--version")
    assert proc.returncode == 0 and __version__ in proc.stdout


# a module that leaves a mark when imported: a conflicting plugin must not be
IMPORT_MARK = "import os, pathlib\npathlib.Path(os.environ['MARKS'], __name__).touch()\n"


def test_two_distributions_registering_one_name_are_both_conflict_and_neither_runs(mlx, tmp_path):
    site, marks = tmp_path / "site", tmp_path / "marks"
    marks.mkdir()
    fake_distribution(site, "mlx-twin-a", "1.0", {"twin": "twin_a"}, {"twin_a": IMPORT_MARK})
    fake_distribution(site, "mlx-twin-b", "2.0", {"twin": "twin_b"}, {"twin_b": IMPORT_MARK})
    env = {"PYTHONPATH": str(site), "MARKS": str(marks)}

    proc = mlx("plugins", "list", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    twins = [r for r in json.loads(proc.stdout) if r["name"] == "twin"]
    assert [(r["distribution"], r["version"], r["status"]) for r in twins] == [
        ("mlx-twin-a", "1.0", "conflict"),
        ("mlx-twin-b", "2.0", "conflict"),
    ]
    assert all("mlx-twin-a 1.0 (twin_a)" in r["reason"] and "mlx-twin-b 2.0 (twin_b)" in r["reason"] for r in twins)

    from mlx_core.testing import one_line_error

    line = one_line_error(mlx("run", "twin", "data", "--runs-dir", str(tmp_path / "runs"), env=env))
    assert "'twin' is conflict" in line and "mlx-twin-a" in line and "mlx-twin-b" in line
    assert list(marks.iterdir()) == []  # neither module was imported
    assert not (tmp_path / "runs").exists()


def test_a_third_party_package_cannot_shadow_a_builtin_unseen(mlx, tmp_path):
    site = tmp_path / "site"
    fake_distribution(site, "mlx-impostor", "9.9", {"linreg": "impostor"}, {"impostor": "raise SystemExit(3)\n"})
    rows = [r for r in json.loads(mlx("plugins", "list", "--json", env={"PYTHONPATH": str(site)}).stdout)]
    linreg = {r["distribution"]: r["status"] for r in rows if r["name"] == "linreg"}
    assert linreg == {"mlx-impostor": "conflict", "mlx-testplugins": "conflict"}
    assert {r["name"] for r in rows} >= {"stamp", "broken_import"}  # the others load as before


def test_allow_list_naming_an_uninstalled_plugin_warns_once(mlx):
    proc = mlx("plugins", "list", "--json", env={"MLX_LOAD_PLUGINS": "linreg,nosuch"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: MLX_LOAD_PLUGINS names 'nosuch', not installed"), lines
    assert {r["name"]: r["status"] for r in json.loads(proc.stdout)}["linreg"] == "ok"
    assert mlx("plugins", "list", "--json", env={"MLX_LOAD_PLUGINS": "linreg"}).stderr == ""


@pytest.mark.parametrize("value", ["0", "false", "no", "off", ""])
def test_trace_off_words_do_not_trace(mlx, tmp_path, value):
    proc = mlx(
        "run", "linreg", "data", "--runs-dir", str(tmp_path),
        env={"MLX_TRACE_PLUGINS": value, "MLX_LOAD_PLUGINS": "linreg"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "mlx trace:" not in proc.stderr
