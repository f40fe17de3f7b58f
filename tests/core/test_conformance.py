"""The conformance kit, exercised on plugins installed through real entry points."""

from __future__ import annotations

import pytest

from mlx_core import testing
from mlx_core.testing import PluginConformance


class TestLinregConforms(PluginConformance):
    plugin = "linreg"
    overrides = ["data.n=20"]


def test_kit_rejects_broken_plugin():
    with pytest.raises(AssertionError, match="broken"):
        testing.check_description("no_describe")


def test_kit_rejects_missing_plugin():
    with pytest.raises(AssertionError, match="not installed"):
        testing.load("nope")


def test_kit_run_stage_returns_manifest(tmp_path, mlx_run):
    m = mlx_run("linreg", "train", ["train.epochs=3"])
    assert m.completed("train") and "val_mse" in m.data["metrics"]


def test_run_data_stage_false_skips_the_data_stage_check(tmp_path):
    class NeedsInputs(PluginConformance):
        plugin = "linreg"
        overrides = ["data.path=/nonexistent/points.csv"]  # would fail if it ran
        run_data_stage = False

    with pytest.raises(pytest.skip.Exception, match="data stage needs user inputs"):
        NeedsInputs().test_data_stage_runs(tmp_path)
