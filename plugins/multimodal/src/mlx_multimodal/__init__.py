"""mlx plugin ``multimodal``: visual question answering with torchmultimodal's FLAVA.

Hookimpls only; torch, torchvision, torchmultimodal, datasets and transformers are imported
inside the stage modules, which are imported inside the hooks (``mlx plugins list`` stays cheap).
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
        stages=("data", "model", "train", "export"),
        hardware=("cpu", "cuda"),
        config=MultimodalConfig,
        requires=("torch", "torchvision", "torchmultimodal", "datasets", "tokenizers", "transformers"),
        profiler="torch",
        core_api=">=1.2,<2",  # mlx_core.jsonl (1.2), atomic_dir (1.1)
    )


@hookimpl
def mlx_data(ctx):
    if ctx.plugin != NAME:
        return None
    from .data import build_data

    return build_data(ctx)


@hookimpl
def mlx_model(ctx, data):
    if ctx.plugin != NAME:
        return None
    from .model import build_model

    return build_model(ctx, data)


@hookimpl
def mlx_train(ctx, data, model):
    if ctx.plugin != NAME:
        return None
    from .train import train

    return train(ctx, data, model)


@hookimpl
def mlx_export(ctx, data, model):
    if ctx.plugin != NAME:
        return None
    from .export import export

    return export(ctx, data, model)


@hookimpl
def mlx_predict(ctx, inputs):
    if ctx.plugin != NAME:
        return None
    from .predict import predict

    return predict(ctx, inputs)
