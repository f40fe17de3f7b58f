import subprocess
import sys

import pytest

from mlx_core.testing import PluginConformance

from .conftest import TINY


@pytest.mark.lowest_core  # nox <plugin>-lowest-core runs these against the lowest core declared
class TestConformance(PluginConformance):
    plugin = "recsys"
    overrides = TINY


def test_import_is_light():
    code = (
        "import sys, mlx_recsys; info = mlx_recsys.mlx_plugin(); "
        "heavy = [m for m in ('torch', 'torchrec', 'fbgemm_gpu', 'numpy', 'paddle', 'transformers') if m in sys.modules]; "
        "print(info.name, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "recsys []"


def test_tutorial_tables_expressible():
    from mlx_recsys.config import RecsysConfig, check

    cfg = RecsysConfig.model_validate(
        {"model": {"tables": [
            {"name": "product_table", "embedding_dim": 64, "num_embeddings": 4096, "feature_names": ["product"], "pooling": "SUM"},
            {"name": "user_table", "embedding_dim": 64, "num_embeddings": 4096, "feature_names": ["user"], "pooling": "SUM"},
        ]}}
    )  # fmt: skip
    check(cfg)
    from mlx_recsys.model import table_configs

    tabs = table_configs(cfg)
    assert [(t.name, t.num_embeddings, t.embedding_dim, t.pooling.name) for t in tabs] == [
        ("product_table", 4096, 64, "SUM"),
        ("user_table", 4096, 64, "SUM"),
    ]
