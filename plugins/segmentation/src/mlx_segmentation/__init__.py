"""mlx segmentation plugin: torchvision DeepLabV3 / FCN from VOC-format data to verified
ExecuTorch, TorchScript and ONNX exports.

Only the description lives here: the stage table names each stage's function, which the core
imports when a run reaches that stage, so ``mlx plugins list`` never imports torch.
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
        stages={
            "data": "mlx_segmentation.data:build_data",
            "model": "mlx_segmentation.model:build_model",
            "train": "mlx_segmentation.train:train",
            "export": "mlx_segmentation.export:export",
            "predict": "mlx_segmentation.predict:predict",
            "examples": "mlx_segmentation.examples:examples",
            "serve": "mlx_segmentation.serve:serve",
        },
        hardware=("cpu", "cuda"),
        config=SegmentationConfig,
        requires=("torch", "torchvision", "executorch", "onnxruntime", "onnx", "matplotlib", "PIL"),
        profiler="torch",
        distribute="torch-ddp",  # mlx_torch: ignite.distributed from torchrun's environment
        core_api=">=1.3,<2",  # stage table, examples, serve, distribute
    )


@hookimpl
def mlx_models():
    from .hub import MODELS

    return dict(MODELS)
