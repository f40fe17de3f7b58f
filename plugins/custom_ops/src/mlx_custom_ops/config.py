"""Config of the custom_ops plugin's own runs, and the options it takes on other plugins' runs.

Light on purpose: imported by ``mlx plugins list`` (pydantic only, no torch/paddle)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlx_core import ConfigError, Section
from mlx_torch.config import EngineTrainConfig, Schedule


class DataConfig(Section):
    path: str | None = Field(
        None,
        description="Flowers-102 as downloaded (jpg/, imagelabels.mat, setid.mat: trnid/valid) or as image "
        "folders (train/<class>/*.jpg, valid/<class>/*.jpg); optional cat_to_name.json; default: a generated "
        "sample in the image-folder layout",
    )
    image_size: int = Field(32, ge=8, le=1024, description="images are resized to image_size x image_size")
    sample_classes: int = Field(4, ge=2, le=102, description="classes of the generated sample")
    sample_per_class: int = Field(40, ge=4, le=10_000, description="training images per class of the generated sample")
    sample_valid_per_class: int = Field(
        12, ge=1, le=10_000, description="validation images per class of the generated sample"
    )


class ModelConfig(Section):
    backend: Literal["paddle", "torch"] = Field("paddle", description="framework the model is built in")
    impl: Literal["composite", "custom"] = Field(
        "custom", description="involution implementation: composite ops, or the C++ custom operator"
    )
    depth: Literal[26, 38, 50, 101, 152] = Field(26, description="RedNet depth (blocks [1,2,4,1] ... [3,8,36,3])")
    width: int = Field(16, ge=1, le=1024, description="bottleneck width of the first stage (RedNet: 64)")
    stem_channels: int = Field(32, ge=2, le=1024, description="stem output channels (RedNet: 64)")
    kernel_size: int = Field(7, ge=1, le=63, description="involution kernel size in the bottlenecks (odd)")
    stem_kernel_size: int = Field(3, ge=1, le=63, description="involution kernel size in the stem (odd)")
    group_channels: int = Field(16, ge=1, le=1024, description="channels per involution group (G = C / group_channels)")
    reduction: int = Field(4, ge=1, le=64, description="channel reduction of the kernel generator")
    downsample: Literal["avgpool", "conv"] = Field(
        "avgpool",
        description="shortcut of a strided block: average pool + 1x1 conv, or a strided 1x1 conv as in the "
        "involution authors' released RedNet checkpoints (mmcls avg_down=False)",
    )
    weights: str | None = Field(
        None,
        description="RedNet weights to load (either backend): the involution authors' released mmcls checkpoint "
        "(state_dict with backbone./head. keys; needs model.downsample=conv) or a torch RedNet state dict",
    )


class TrainConfig(EngineTrainConfig):
    """The RedNet keys plus the engine's (precision, early_stopping, grad_accum_steps, ...:
    docs/engine.md), which the torch backend uses; the Paddle backend reads epochs, batch_size,
    lr, weight_decay and threads only."""

    epochs: int = Field(6, ge=1, le=1000, description="passes over the training split")
    batch_size: int = Field(16, ge=1, le=4096, description="images per step")
    lr: float = Field(0.05, gt=0, le=10, description="SGD learning rate (momentum 0.9, cosine decay)")
    lr_schedule: Schedule = Field(
        "cosine",
        description="torch backend: cosine (CosineAnnealingLR to 0, as the Paddle backend), poly or constant, "
        "each after train.warmup_steps of linear warm-up",
    )
    weight_decay: float = Field(1e-4, ge=0, le=1, description="L2 weight decay")
    threads: int = Field(
        0,
        ge=0,
        le=256,
        description="CPU threads of the framework's own kernels (0: leave as is); the C++ involution kernels follow OMP_NUM_THREADS",
    )


class ExportConfig(Section):
    atol: float = Field(1e-4, gt=0, description="max abs difference allowed between exported and eager logits")
    batch: int = Field(4, ge=1, le=256, description="validation images used for the parity check")


class PredictConfig(Section):
    top_k: int = Field(5, ge=1, le=1000, description="mlx predict / mlx serve: how many classes to return, best first")


class CustomOpsConfig(Section):
    seed: int = Field(0, ge=0, lt=2**63, description="random seed of data generation, init and shuffling")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)


class CustomOpsOptions(Section):
    """``--set custom_ops.involution=custom`` / ``custom_ops.swap=backbone.3x3`` on any plugin's run."""

    involution: Literal["keep", "composite", "custom"] = Field(
        "keep", description="swap every Involution layer of the run's model to this implementation"
    )
    swap: Literal["none", "backbone.3x3"] = Field(
        "none",
        description="backbone.3x3: replace the 3x3 stride-1 convolutions (plain or depthwise, same channels in "
        "and out) under the run's torch model's 'backbone' with Involution layers (impl: custom_ops.involution, "
        "composite when keep)",
    )


def check_distribution(cfg: CustomOpsConfig, world_size: int) -> None:
    """One line when a launched run (``mlx run --nproc N``, ``ctx.dist.world_size`` > 1) asks
    for the Paddle backend: Paddle's DataParallel (gloo on CPU) is set up by its own launcher
    (``paddle.distributed.launch``: PADDLE_TRAINER_ENDPOINTS for every rank), not from the
    environment torch.distributed.run gives the workers, so it is not supported here."""
    if world_size > 1 and cfg.model.backend == "paddle":
        raise ConfigError(
            f"model.backend='paddle' on {world_size} processes: Paddle's CPU collectives are not supported by the "
            "mlx launcher (Paddle's DataParallel needs paddle.distributed.launch); run it as one process "
            "or set model.backend=torch"
        )
