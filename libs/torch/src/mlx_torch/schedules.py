"""Learning-rate schedules, all torch's own (``torch.optim.lr_scheduler``), stepped once per
optimizer step: PolynomialLR, CosineAnnealingLR or a constant rate, after an optional LinearLR
warm-up joined to them with SequentialLR."""

from __future__ import annotations

import torch
from torch.optim import lr_scheduler as sch

from .config import EngineTrainConfig


def build(cfg: EngineTrainConfig, optimizer: torch.optim.Optimizer, total_steps: int) -> sch.LRScheduler:
    """The schedule of ``cfg.lr_schedule`` over ``total_steps`` optimizer steps."""
    warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
    rest = max(1, total_steps - warmup)
    if cfg.lr_schedule == "poly":
        main: sch.LRScheduler = sch.PolynomialLR(optimizer, total_iters=rest, power=cfg.poly_power)
    elif cfg.lr_schedule == "cosine":
        main = sch.CosineAnnealingLR(optimizer, T_max=rest, eta_min=0.0)
    else:
        main = sch.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if warmup == 0:
        return main
    ramp = sch.LinearLR(optimizer, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup)
    return sch.SequentialLR(optimizer, schedulers=[ramp, main], milestones=[warmup])
