"""mlx plugin ``recsys``: TorchRec recommendation models.

data: Criteo-format TSV (or a generated click log in that format) as KeyedJaggedTensor batches;
model: EmbeddingBagCollection (built on ``meta``) + DLRM; train: DistributedModelParallel on
gloo, 1 or N processes and nodes (the core launcher: `mlx run recsys train --nproc N`), planner constraints from the config; export: int8
quantized tables + dense part as TorchScript; predict: score TSV files.

Only the description here (pydantic/mlx_core at import time); the stage table names
``mlx_recsys.stages``, where torch and torchrec are imported inside the functions.
"""

from __future__ import annotations

from mlx_core import PluginInfo, hookimpl

from .config import RecsysConfig

NAME = "recsys"


@hookimpl
def mlx_plugin():
    return PluginInfo(
        name=NAME,
        summary="TorchRec: KeyedJaggedTensor click logs, EmbeddingBagCollection + DLRM, sharded DMP training, int8 export",
        stages={key: f"mlx_recsys.stages:{key}" for key in ("data", "model", "train", "export", "predict", "serve")},
        hardware=("cpu", "cuda"),
        config=RecsysConfig,
        requires=("torch", "torchrec", "fbgemm_gpu"),
        profiler="torch",
        distribute="torchrec-dmp",
        core_api=">=1.3,<2",  # stage table, serve, distribute
    )
