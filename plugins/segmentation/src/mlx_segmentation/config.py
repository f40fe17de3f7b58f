"""The segmentation plugin's config. Pure pydantic: importing it must stay cheap (no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from mlx_core import Section
from mlx_torch.config import EngineTrainConfig

Arch = Literal["deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50", "deeplabv3_resnet101", "fcn_resnet50"]
Format = Literal["executorch", "torchscript", "onnx"]
FORMATS: tuple[str, ...] = ("executorch", "torchscript", "onnx")


class DataConfig(Section):
    root: str | None = Field(
        None,
        description="a Pascal VOC-format folder (JPEGImages/, SegmentationClass/, ImageSets/Segmentation/); "
        "none: generate a sample dataset in that layout inside the run",
    )
    layout: Literal["voc", "sbd", "aug"] = Field(
        "voc",
        description="voc: VOC2012 (JPEGImages/, SegmentationClass/, ImageSets/Segmentation/); sbd: SBD's dataset/ "
        "(img/*.jpg, cls/*.mat, train.txt, val.txt); aug: SegmentationClassAug/*.png beside VOC's JPEGImages/ "
        "(split train_aug)",
    )
    train_split: str = Field(
        "train", min_length=1, description="split file (ImageSets/Segmentation/NAME.txt) to train on"
    )
    val_split: str = Field("val", min_length=1, description="split file to evaluate on each epoch")
    image_size: int = Field(
        128, ge=32, le=1024, description="square side in pixels the model sees (train crops, eval/export input)"
    )
    scale_min: float = Field(0.75, gt=0, le=4, description="smallest random rescale factor for training crops")
    scale_max: float = Field(1.25, gt=0, le=4, description="largest random rescale factor for training crops")
    hflip: bool = Field(True, description="random horizontal flips for training")
    sample_train: int = Field(192, ge=2, le=20_000, description="generated sample data: number of training images")
    sample_val: int = Field(32, ge=1, le=20_000, description="generated sample data: number of validation images")
    max_objects: int = Field(3, ge=1, le=10, description="generated sample data: most objects per image")


class ModelConfig(Section):
    arch: Arch = Field("deeplabv3_mobilenet_v3_large", description="torchvision segmentation architecture")
    num_classes: int = Field(21, ge=2, le=1000, description="output classes (21 = background + the 20 VOC classes)")
    weights: str | None = Field(
        None,
        description="a local torchvision checkpoint (.pth state dict) to start from; none: random init (untrained)",
    )
    aux_loss: bool = Field(
        False, description="add torchvision's auxiliary classifier head (trained with weight train.aux_weight)"
    )


class TrainConfig(EngineTrainConfig):
    """The segmentation keys plus the engine's (precision, early_stopping, grad_accum_steps, ...:
    docs/engine.md)."""

    epochs: int = Field(10, ge=0, le=10_000, description="passes over the training split (0: evaluate only)")
    batch_size: int = Field(
        16,
        ge=2,
        le=1024,
        description="images per optimizer step over all processes (>= 2 per process: the ASPP pooling branch needs batch norm statistics)",
    )
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="optimizer")
    lr: float = Field(3e-3, gt=0, le=10, description="peak learning rate of the schedule (train.lr_schedule)")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(1e-4, ge=0, le=1, description="weight decay")
    bn_momentum: float = Field(
        0.1,
        gt=0,
        le=1,
        description="BatchNorm running-statistics momentum while training (torchvision's MobileNetV3 uses 0.01, "
        "too slow for short runs from scratch: eval-mode statistics would still be those of the random init)",
    )
    aux_weight: float = Field(0.5, ge=0, le=10, description="weight of the auxiliary loss when model.aux_loss is on")
    threads: int = Field(0, ge=0, le=512, description="torch CPU threads (0: torch's default)")


class ExportConfig(Section):
    formats: list[Format] = Field(
        default_factory=lambda: list(FORMATS),
        min_length=1,
        description="artifacts to write: executorch (.pte), torchscript (.pt), onnx (.onnx)",
    )
    max_abs_diff: float = Field(1e-3, ge=0, description="parity: largest allowed |exported - eager| logit difference")
    min_agreement: float = Field(
        0.999, ge=0, le=1, description="parity: smallest allowed fraction of pixels with the same argmax class"
    )
    opset: int = Field(18, ge=13, le=23, description="ONNX opset version")
    rewrite_padding_taps: bool = Field(
        True,
        description="exported models only (their input size is fixed): dilated convolutions whose taps read "
        "mostly zero padding at that size are rewritten exactly (centre tap, border slices); see padding_taps.py",
    )

    @field_validator("formats")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class PredictConfig(Section):
    format: Format = Field("executorch", description="which exported artifact `mlx predict` runs")
    alpha: float = Field(0.55, ge=0, le=1, description="opacity of the mask in overlay PNGs")


class SegmentationConfig(Section):
    seed: int = Field(0, ge=0, lt=2**63, description="seed for the sample data, initialisation and training order")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)
