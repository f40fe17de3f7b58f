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
