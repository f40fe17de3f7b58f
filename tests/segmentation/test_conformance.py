"""The core's conformance kit, plus this plugin's cheap-import promise."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlx_core.testing import PluginConformance

from .seg_helpers import TINY


@pytest.mark.lowest_core  # nox <plugin>-lowest-core runs these against the lowest core declared
class TestConformance(PluginConformance):
    plugin = "segmentation"
    overrides = TINY


def test_import_and_describe_import_no_heavy_library():
    code = (
        "import sys, json, mlx_segmentation\n"
        "info = mlx_segmentation.mlx_plugin()\n"
        "models = mlx_segmentation.mlx_models()\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "{'torch', 'torchvision', 'executorch', 'onnx', 'onnxruntime', 'matplotlib'}]\n"
        "print(json.dumps({'name': info.name, 'models': sorted(models), 'heavy': heavy}))\n"
    )
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert out["name"] == "segmentation"
    assert out["heavy"] == []
    assert out["models"] == [
        "deeplabv3_mobilenet_v3_large",
        "deeplabv3_resnet101",
        "deeplabv3_resnet50",
        "fcn_resnet50",
    ]
