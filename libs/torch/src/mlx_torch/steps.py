"""The training step the engine runs for every plugin: the plugin gives only its loss
(``loss_fn(model, batch) -> tensor``); precision, gradient accumulation, clipping, the grad
scaler and the schedule are the engine's.

Written here rather than taken from ``ignite.engine.supervised_training_step_amp``: that step
has no gradient clipping and no check for a diverged (non-finite) loss, and wants a
``loss_fn(y_pred, y)`` where several plugins' losses need the whole model output.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from ignite.engine import Engine
from torch import nn

from mlx_core import ConfigError, DataError

from .config import EngineTrainConfig

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: str) -> contextlib.AbstractContextManager:
    """torch.autocast for bf16/fp16 on ``device``; a no-op context for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device, dtype=DTYPES[precision])


def check_precision(precision: str, device: str) -> None:
    if precision == "fp16" and device != "cuda":
        raise ConfigError(
            f"train.precision=fp16 needs CUDA (float16 with a grad scaler), but the device is {device}; "
            "use bf16 or fp32 on the CPU"
        )


@dataclass
class StepState:
    """What the step shares with the engine's handlers: the epoch's summed loss and samples, the
    learning rate of the last optimizer step, samples seen (throughput)."""

    loss_sum: float = 0.0
    samples: int = 0
    lr: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def reset(self) -> None:
        self.loss_sum, self.samples = 0.0, 0


def make_train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    prepare: Callable[[Any, str], Any],
    cfg: EngineTrainConfig,
    device: str,
    step_count: Any,
    state: StepState,
    batch_size_of: Callable[[Any], int],
    lr_name: str = "train.lr",
) -> Callable[[Engine, Any], float]:
    """An Ignite process function: one batch forward and backward; an optimizer step every
    ``grad_accum_steps`` batches and at the end of each epoch."""
    accum = cfg.grad_accum_steps
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
    params = [p for p in model.parameters() if p.requires_grad]

    def step(engine: Engine, batch: Any) -> float:
        model.train()
        batch = prepare(batch, device)
        with autocast(cfg.precision, device):
            loss = loss_fn(model, batch)
        value = float(loss.detach())
        if not math.isfinite(value):
            peak = optimizer.param_groups[0].get("initial_lr", optimizer.param_groups[0]["lr"])
            raise DataError(
                f"training diverged at epoch {engine.state.epoch} (loss {value}); lower {lr_name} (now {peak:g})"
            )
        scaled = loss / accum
        (scaler.scale(scaled) if scaler is not None else scaled).backward()
        within = (engine.state.iteration - 1) % engine.state.epoch_length + 1
        if within % accum == 0 or within == engine.state.epoch_length:
            if scaler is not None:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            if cfg.grad_clip_norm > 0:
                nn.utils.clip_grad_norm_(params, cfg.grad_clip_norm)
            state.lr = optimizer.param_groups[0]["lr"]
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step_count.value += 1
        n = batch_size_of(batch)
        state.loss_sum += value * n
        state.samples += n
        return value

    step.scaler = scaler  # type: ignore[attr-defined]  # saved in checkpoints under fp16
    return step
