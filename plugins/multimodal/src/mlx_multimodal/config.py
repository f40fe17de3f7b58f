"""The multimodal plugin's run config (pydantic only: no torch here, ``mlx plugins list`` imports it)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlx_core import Section
from mlx_torch.config import EngineTrainConfig, Schedule


class DataConfig(Section):
    path: str | None = Field(
        None,
        description="folder with train.jsonl (or .json) and optional val.jsonl of VQA records "
        "{image, question, answers}; image paths relative to the folder. Unset: generated shapes set",
    )
    answers_file: str | None = Field(
        None, description="answer vocabulary, one answer per line; unset: built from the training answers"
    )
    tokenizer: str | None = Field(
        None, description="local BERT tokenizer folder; unset: a WordPiece vocabulary trained on the questions"
    )
    wordpiece_vocab_size: int = Field(400, ge=50, le=100_000, description="size of the trained WordPiece vocabulary")
    image_size: int = Field(32, ge=8, le=1024, description="images are resized to image_size x image_size")
    max_length: int = Field(
        16, ge=4, le=512, description="question tokens incl. [CLS]/[SEP]; longer ones are truncated"
    )
    val_fraction: float = Field(0.2, gt=0, lt=1, description="held-out share when the folder has no val file")
    bad_image: Literal["error", "skip"] = Field(
        "error", description="a record whose image is missing/unreadable: stop with an error, or skip and count it"
    )
    unknown_answer: Literal["unknown", "drop"] = Field(
        "unknown", description="an answer outside the vocabulary: map it to the <unk> class, or drop the record"
    )
    n_train: int = Field(3000, ge=1, description="generated set: number of training questions")
    n_val: int = Field(600, ge=1, description="generated set: number of held-out questions")
    max_objects: int = Field(
        3, ge=1, le=4, description="generated set: shapes per image, 1 to this many (one per quadrant)"
    )


class ModelConfig(Section):
    size: Literal["reduced", "full"] = Field(
        "reduced",
        description="full: FLAVA as published (~244M parameters, 224px/16px patches); reduced: the sizes below",
    )
    hidden_size: int = Field(64, ge=8, le=1024, description="reduced: hidden size of all three encoders")
    heads: int = Field(2, ge=1, le=16, description="reduced: attention heads per layer (must divide hidden_size)")
    image_layers: int = Field(2, ge=1, le=12, description="reduced: image encoder layers")
    text_layers: int = Field(2, ge=1, le=12, description="reduced: text encoder layers")
    multimodal_layers: int = Field(1, ge=1, le=12, description="reduced: multimodal encoder layers")
    patch_size: int = Field(8, ge=2, le=64, description="reduced: image patch size (must divide data.image_size)")
    dropout: float = Field(0.1, ge=0, lt=1, description="classifier head dropout")
    weights: str | None = Field(
        None,
        description="local FLAVA weights: a torchmultimodal state dict (.pt), a Hugging Face folder/file "
        "(model.safetensors or pytorch_model.bin, e.g. facebook/flava-full) or an mlx checkpoint; mapped by name",
    )


class TrainConfig(EngineTrainConfig):
    """The multimodal keys plus the engine's (precision, early_stopping, grad_accum_steps, ...:
    docs/engine.md); the schedule, warm-up and clipping defaults are this plugin's recipe."""

    epochs: int = Field(15, ge=1, le=1000, description="passes over the training split")
    batch_size: int = Field(32, ge=1, le=4096, description="questions per optimizer step over all processes")
    lr: float = Field(1e-3, gt=0, description="AdamW peak learning rate")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    max_minutes: float = Field(
        0.0,
        ge=0,
        description="stop after the epoch in which this invocation's training wall time reaches this (0: off)",
    )
    threads: int = Field(
        1,
        ge=0,
        le=256,
        description="torch CPU threads (0: torch's default); 1 is fastest for the reduced model on a busy machine",
    )
    # the engine's keys with this plugin's defaults: 10 % linear warm-up, then cosine to 0; clipping at 1.0
    lr_schedule: Schedule = Field(
        "cosine",
        description="cosine: CosineAnnealingLR to 0; poly: PolynomialLR to 0; constant: the peak learning rate "
        "(each after the warm-up)",
    )
    warmup_fraction: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="share of the run's optimizer steps that is linear warm-up (when warmup_steps is 0)",
    )
    grad_clip_norm: float = Field(1.0, ge=0, description="clip the gradients' global L2 norm to this (0: no clipping)")


class ExportConfig(Section):
    atol: float = Field(1e-4, gt=0, description="max abs logit difference allowed between reloaded program and eager")


class PredictConfig(Section):
    top_k: int = Field(5, ge=1, le=100, description="answers printed per question")


class MultimodalConfig(Section):
    seed: int = Field(0, ge=0, lt=2**63, description="seed for data generation, splits, init and batching")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)
