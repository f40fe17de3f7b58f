"""The declarative stage table (API 1.2): the core dispatches a run's stage to its own plugin's
function, lazily; old-style plugins (hook functions with a guard) keep working beside it."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from mlx_core import PluginInfo, hookimpl
from mlx_core.plugins import BROKEN, OK, PluginRecord, Registry
from mlx_core.testing import PluginConformance, check_examples_contract, check_stage_table, cli


class TestTabledConformance(PluginConformance):
    plugin = "tabled"


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def test_table_plugin_runs_every_stage_and_predicts(tmp_path: Path) -> None:
    proc = cli("run", "tabled", "export", "--runs-dir", str(tmp_path), "--set", "train.epochs=4")
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    m = manifest(run_dir)
    assert [m["stages"][s]["status"] for s in ("data", "model", "train", "export")] == ["completed"] * 4
    assert [row["step"] for row in m["stages"]["train"]["history"]] == [1, 2, 3, 4]
    assert json.loads((run_dir / "export" / "mean.json").read_text())["mean"] > 0
    pred = cli("predict", "tabled", str(run_dir), "x", "--json")
    assert pred.returncode == 0, pred.stderr
    assert json.loads(pred.stdout)[0]["mean"] == json.loads((run_dir / "export" / "mean.json").read_text())["mean"]


def test_stage_module_is_imported_only_when_a_run_reaches_it() -> None:
    code = (
        "import sys; from mlx_core.plugins import Registry; r = Registry(); "
        "assert r.records['tabled'].status == 'ok', r.records['tabled']; "
        "print('mlx_testplugins.tabled_stages' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_wrappers_still_wrap_a_table_plugins_stage(tmp_path: Path) -> None:
    proc = cli("run", "tabled", "export", "--runs-dir", str(tmp_path), "--set", "stamp.enabled=true")
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    assert (run_dir / "export" / "STAMP").read_text() == "stamped tabled\n"
    assert any(a["kind"] == "stamp" for a in manifest(run_dir)["artifacts"])


def test_old_style_plugin_still_runs_beside_table_plugins(tmp_path: Path) -> None:
    proc = cli("run", "linreg", "export", "--runs-dir", str(tmp_path), "--set", "train.epochs=20")
    assert proc.returncode == 0, proc.stderr
    m = manifest(Path(proc.stdout.strip().splitlines()[-1]))
    assert m["stages"]["export"]["status"] == "completed"


def test_missing_table_function_is_one_line_at_its_stage(tmp_path: Path) -> None:
    listed = {r["name"]: r for r in json.loads(cli("plugins", "list", "--json").stdout)}
    assert listed["bad_table"]["status"] == "ok"  # lazy: nothing is imported to list it
    proc = cli("run", "bad_table", "data", "--runs-dir", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: plugin 'bad_table': stage table entry 'data' = 'mlx_testplugins.tabled_stages:no_such_function' "
        "cannot be loaded: AttributeError: module 'mlx_testplugins.tabled_stages' has no attribute 'no_such_function'"
    ], proc.stderr
    assert "Traceback" not in proc.stderr
    with pytest.raises(Exception, match="no_such_function"):
        check_stage_table("bad_table")


def _module(name: str, info: PluginInfo, **hooks) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.mlx_plugin = hookimpl(lambda: info)
    for hook, fn in hooks.items():
        setattr(mod, hook, hookimpl(fn))
    return mod


def test_table_entry_and_hook_function_for_one_stage_is_broken() -> None:
    info = PluginInfo(name="twice", summary="s", stages={"data": "x.y:z"}, profiler="none", core_api=">=1.2,<2")
    reg = Registry(load=False)

    def mlx_data(ctx):
        return None

    rec = reg.register(_module("twice", info, mlx_data=mlx_data), PluginRecord(name="twice", status=OK))
    assert rec.status == BROKEN and "stage table and also implements them as hook functions" in rec.reason


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        ({"data": "x.y:z", "fit": "x.y:z"}, "unknown stages ['fit']"),
        ({"data": "not a target"}, "stage table entry 'data' is 'not a target'; expected 'package.module:function'"),
    ],
)
def test_bad_stage_tables_are_broken_with_the_reason(stages, expected) -> None:
    info = PluginInfo(name="bad", summary="s", stages=stages, profiler="none", core_api=">=1.2,<2")
    reg = Registry(load=False)
    rec = reg.register(_module("bad", info), PluginRecord(name="bad", status=OK))
    assert rec.status == BROKEN and expected in rec.reason, rec.reason


def test_info_stages_reads_back_as_stage_names() -> None:
    info = PluginInfo(name="t", summary="s", stages={"export": "a.b:c", "data": "a.b:d", "predict": "a.b:e"})
    assert info.stages == ("data", "export")
    assert info.table == {"export": "a.b:c", "data": "a.b:d", "predict": "a.b:e"}


def test_examples_contract_is_checked(tmp_path: Path) -> None:
    assert check_examples_contract("tabled", tmp_path, n=3) == {"calibration": 3, "eval": 3}


def test_examples_of_a_plugin_without_them_is_one_line(tmp_path: Path) -> None:
    from mlx_core.errors import PluginError

    with pytest.raises(PluginError, match="plugin 'linreg' provides no examples of its data"):
        check_examples_contract("linreg", tmp_path)
