"""The engine's config block. Plugins embed it: ``class TrainConfig(EngineTrainConfig)`` adds
their own keys (epochs, batch size, learning rate, ...) to these. Pure pydantic, no torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlx_core import Section

Precision = Literal["fp32", "bf16", "fp16"]
Schedule = Literal["poly", "cosine", "constant"]


class EarlyStoppingConfig(Section):
    metric: str | None = Field(
        None,
        description="a metric logged each epoch (e.g. val_miou, val_loss) that must improve; none: never stop early",
    )
    mode: Literal["max", "min"] = Field("max", description="max: higher is better; min: lower is better")
    patience: int = Field(3, ge=1, le=10_000, description="epochs without improvement before training stops")
    min_delta: float = Field(0.0, ge=0, description="smallest change of the metric that counts as an improvement")


class EngineTrainConfig(Section):
    precision: Precision = Field(
        "fp32",
        description="fp32; bf16: autocast to bfloat16 (CPU or CUDA); fp16: autocast to float16 with a grad scaler "
        "(CUDA only)",
    )
    grad_accum_steps: int = Field(
        1, ge=1, le=1024, description="batches whose gradients are summed before each optimizer step"
    )
    grad_clip_norm: float = Field(0.0, ge=0, description="clip the gradients' global L2 norm to this (0: no clipping)")
    lr_schedule: Schedule = Field(
        "poly",
        description="poly: torch PolynomialLR to 0 over the run; cosine: CosineAnnealingLR to 0; constant: the peak "
        "learning rate (each after train.warmup_steps of linear warm-up)",
    )
    warmup_steps: int = Field(
        0, ge=0, le=10_000_000, description="optimizer steps of linear warm-up before the schedule"
    )
    warmup_fraction: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="when train.warmup_steps is 0: this share of the run's optimizer steps is linear warm-up "
        "(at least 1 step when above 0)",
    )
    poly_power: float = Field(0.9, ge=0, le=10, description="poly schedule: lr * (1 - step/total_steps) ** poly_power")
    keep_checkpoints: int = Field(
        2, ge=1, le=1000, description="epoch checkpoints kept in checkpoints/ (oldest deleted)"
    )
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
