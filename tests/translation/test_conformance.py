import subprocess
import sys

import pytest

from mlx_core.testing import PluginConformance


@pytest.mark.lowest_core  # nox <plugin>-lowest-core runs these against the lowest core declared
class TestConformance(PluginConformance):
    plugin = "translation"
    overrides = ["data.size=60", "data.vocab_size=100"]


def test_import_and_describe_load_no_heavy_library():
    code = (
        "import sys, mlx_translation; info = mlx_translation.mlx_plugin(); "
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'tokenizers', 'sacrebleu', 'pyarrow') if m in sys.modules]; "
        "print(info.name, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "translation []"
