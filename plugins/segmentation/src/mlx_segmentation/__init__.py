"""mlx segmentation plugin: torchvision DeepLabV3 / FCN from VOC-format data to verified
ExecuTorch, TorchScript and ONNX exports.

Only the hookimpls live here; torch, torchvision and the exporters are imported inside the
stage functions so that ``mlx plugins list`` stays fast.
"""

from __future__ import annotations

from mlx_core import PluginInfo, hookimpl

from .config import SegmentationConfig

NAME = "segmentation"


@hookimpl
def mlx_plugin():
    return PluginInfo(
        name=NAME,
        summary="semantic segmentation (DeepLabV3/FCN, VOC format) -> ExecuTorch/TorchScript/ONNX with parity checks",
        stages=("data", "model", "train", "export"),
        hardware=("cpu", "cuda"),
        config=SegmentationConfig,
        requires=("torch", "torchvision", "executorch", "onnxruntime", "onnx", "matplotlib", "PIL"),
        profiler="torch",
        core_api=">=1.1,<2",  # atomic_dir
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


@hookimpl
def mlx_models():
    from .hub import MODELS

    return dict(MODELS)
