"""The core's conformance kit, plus the light-import rule checked directly."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlx_core.testing import PluginConformance

from .conftest import TINY


@pytest.mark.lowest_core  # nox <plugin>-lowest-core runs these against the lowest core declared
class TestConformance(PluginConformance):
    plugin = "multimodal"
    overrides = TINY


def test_import_and_description_load_no_heavy_library():
    code = (
        "import sys, mlx_multimodal; info = mlx_multimodal.mlx_plugin(); info.config();"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'torchvision', 'torchmultimodal', 'transformers', 'datasets', 'tokenizers')];"
        "print(info.name, sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["multimodal", "[]"]
