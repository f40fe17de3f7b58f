"""The one test harness of mlx_core.testing does what the tests folders rely on, and the folders
collect together in one pytest process."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from mlx_core import API_VERSION, DataError, hostile, libraries, runs, testing
from mlx_core.testing import (
    one_line_error,
    run_dir_of,
    run_in_process,
    sets,
    stage_context,
    stage_process,
)

ROOT = Path(__file__).resolve().parents[2]


def proc(stderr: str, returncode: int = 2, stdout: str = "") -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(["mlx"], returncode, stdout, stderr)


# --- the judge ---------------------------------------------------------------------------------
def test_one_line_error_returns_the_line_and_checks_the_names():
    assert one_line_error(proc("error: data.path /x: not a folder\n"), "/x") == "error: data.path /x: not a folder"
    with pytest.raises(AssertionError, match="not named"):
        one_line_error(proc("error: data.path /x: not a folder\n"), "/y")


@pytest.mark.parametrize(
    ("stderr", "code", "during_run"),
    [
        ("error: x\n", 1, False),  # exit code other than 2
        ("Traceback (most recent call last):\nerror: x\n", 2, True),
        ("error: x\nerror: y\n", 2, True),  # two error lines
        ("error: x\nmore after it\n", 2, True),  # not the last line
        ("run runs/p/1\nerror: x\n", 2, False),  # not alone where nothing may come before it
        ("nothing\n", 2, True),
        ("error: a lone \ud800 surrogate\n", 2, False),  # not printable as UTF-8
    ],
)
def test_one_line_error_can_fail(stderr, code, during_run):
    with pytest.raises(AssertionError):
        one_line_error(proc(stderr, code), during_run=during_run)


def test_one_line_error_during_a_run_allows_the_run_log_before_it():
    line = one_line_error(proc("run runs/p/1\n[data] step 1 n=3\n\nerror: bad record 3\n"), "record 3", during_run=True)
    assert line == "error: bad record 3"


def test_hostile_kit_and_testing_share_one_judge():
    assert hostile.assert_one_line_error is testing.assert_one_line_error
    assert testing.assert_one_line_error(DataError("a.jsonl:3: bad"), "a.jsonl:3") == "a.jsonl:3: bad"


# --- running stages ------------------------------------------------------------------------------
def test_sets_interleaves_set_flags():
    assert sets("a=1", "b.c=x y") == ["--set", "a=1", "--set", "b.c=x y"]
    assert sets() == []


def test_stage_process_and_run_dir_of_run_a_stage_in_the_given_runs_folder(tmp_path):
    ok = stage_process("linreg", "data", tmp_path / "runs", ["train.epochs=3"], device="cpu")
    run_dir = run_dir_of(ok)
    assert run_dir.parent.parent == tmp_path / "runs" and (run_dir / "run.json").is_file()
    bad = stage_process("linreg", "data", tmp_path / "runs", ["train.epoch=3"], device="cpu")
    with pytest.raises(AssertionError, match="exit 2"):
        run_dir_of(bad)
    assert "train.epoch" in one_line_error(bad)


def test_run_in_process_returns_the_manifest(tmp_path):
    import mlx_testplugins.linreg as linreg
    from mlx_core.plugins import OK, PluginRecord, Registry

    reg = Registry(load=False)
    reg.register(linreg, PluginRecord(name="linreg", status=OK))
    manifest = run_in_process(reg, "linreg", "data", tmp_path / "runs", ["train.epochs=3"])
    assert manifest.completed("data") and manifest.run_dir.parent.parent == tmp_path / "runs"


def test_stage_context_is_a_real_context_with_a_manifest(tmp_path):
    ctx = stage_context(tmp_path / "run", "p", config=None, stage="train", resumed=True)
    assert (ctx.plugin, ctx.stage, ctx.target, ctx.device, ctx.resumed) == ("p", "train", "train", "cpu", True)
    ctx.log_metrics({"loss": 0.5}, step=1)
    ctx.log("quiet by default")
    assert ctx.manifest.data["metrics"] == {"loss": 0.5}
    assert (tmp_path / "run" / "run.json").is_file()
    assert "quiet by default" in ctx.console.file.getvalue()


# --- the hypothesis profile ----------------------------------------------------------------------
def test_the_mlx_hypothesis_profile_is_loaded_for_this_repository():
    """pyproject.toml passes --hypothesis-profile=mlx; the pytest plugin registered it."""
    assert settings.get_profile(testing.HYPOTHESIS_PROFILE) is not None
    current = settings()
    assert current.deadline is None and current.database is None
    assert {"function_scoped_fixture", "too_slow"} <= {h.name for h in current.suppress_health_check}


# --- the tests folders collect together ----------------------------------------------------------
def test_every_tests_folder_with_test_modules_is_a_package():
    folders = {p.parent for p in (ROOT / "tests").rglob("test_*.py")} | {
        p.parent for p in (ROOT / "tests").rglob("conftest.py")
    }
    missing = sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").is_file())
    assert not missing, f"not packages (pytest cannot collect them beside other folders): {missing}"
    for f in folders:  # up to tests/ itself
        for parent in f.relative_to(ROOT / "tests").parents:
            assert (ROOT / "tests" / parent / "__init__.py").is_file(), parent


def test_core_and_every_installed_plugins_tests_collect_in_one_process():
    """``pytest --collect-only tests/core tests/<plugin>...`` for the plugins installed here: their
    test modules share names (test_hub.py, conftest.py) and still collect side by side."""
    names = [p.name for p in sorted((ROOT / "plugins").iterdir()) if (p / "pyproject.toml").is_file()]
    installed = [n for n in names if importlib.util.find_spec(f"mlx_{n}") and (ROOT / "tests" / n).is_dir()]
    folders = ["tests/core", *(f"tests/{n}" for n in installed)]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *folders],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    for folder in folders:
        assert re.search(rf"^{re.escape(folder)}/test_\w+\.py::", out.stdout, re.M), f"nothing collected in {folder}"


# --- one table of libraries, one API version -----------------------------------------------------
def test_the_library_lists_come_from_one_table():
    table = {lib.module for lib in libraries.LIBRARIES}
    assert set(runs.TRACKED_LIBRARIES) == table
    assert set(testing.HEAVY_LIBRARIES) <= table and "torch" in testing.HEAVY_LIBRARIES
    assert "numpy" not in testing.HEAVY_LIBRARIES
    from mlx_core import install

    assert set(install.RUNTIME_DISTS) <= set(libraries.DOCTOR_DISTRIBUTIONS)
    assert {"fbgemm-gpu", "fbgemm-gpu-cpu"} <= set(install.RUNTIME_DISTS)


def test_library_names_are_written_in_the_table_only():
    """No other core module spells out a list of library names (they derive from the table)."""
    for path in (ROOT / "core" / "src" / "mlx_core").rglob("*.py"):
        if path.name == "libraries.py" or "scaffold" in path.parts:
            continue
        text = path.read_text()
        assert '"torchmultimodal' not in text and '"bitsandbytes"' not in text, path


def test_the_api_version_is_defined_once():
    hits = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "core" / "src").rglob("*.py")
        if re.search(r"^\s*API_VERSION\s*=", p.read_text(), re.M)
    ]
    assert hits == ["core/src/mlx_core/__init__.py"], hits
    assert re.fullmatch(r"\d+\.\d+", API_VERSION)


def test_the_harness_is_documented_for_plugin_authors():
    text = (ROOT / "docs" / "plugins.md").read_text()
    for name in ("stage_process", "run_dir_of", "run_stage", "run_in_process", "one_line_error",
                 "assert_one_line_error", "stage_context", "sets", "device_under_test"):  # fmt: skip
        assert f"`{name}(" in text, name
        assert callable(getattr(testing, name)), name
    assert "--hypothesis-profile=mlx" in text and "`read_jsonl(" in text
