"""mlx plugin ``multimodal``: visual question answering with torchmultimodal's FLAVA.

Only the description: its stage table names the stage functions, which the core imports when a
run reaches them; torch, torchmultimodal, datasets and transformers are imported there
(``mlx plugins list`` stays cheap).
"""

from __future__ import annotations

from mlx_core import PluginInfo, hookimpl

from .config import MultimodalConfig

NAME = "multimodal"


@hookimpl
def mlx_plugin():
    return PluginInfo(
        name=NAME,
        summary="visual question answering: FLAVA classifier (torchmultimodal) -> torch.export program",
        stages={
            "data": "mlx_multimodal.data:build_data",
            "model": "mlx_multimodal.model:build_model",
            "train": "mlx_multimodal.train:train",
            "export": "mlx_multimodal.export:export",
            "predict": "mlx_multimodal.predict:predict",
            "serve": "mlx_multimodal.serve:serve",
        },
        hardware=("cpu", "cuda"),
        config=MultimodalConfig,
        requires=("torch", "torchvision", "torchmultimodal", "datasets", "tokenizers", "transformers"),
        profiler="torch",
        distribute="torch-ddp",  # mlx_torch: ignite.distributed from torchrun's environment
        core_api=">=1.3,<2",  # stage table, serve, distribute
    )
