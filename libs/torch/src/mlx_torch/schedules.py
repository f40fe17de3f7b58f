"""Learning-rate schedules, all torch's own (``torch.optim.lr_scheduler``), stepped once per
optimizer step: PolynomialLR, CosineAnnealingLR or a constant rate, after an optional LinearLR
warm-up (a number of steps, or a share of the run's steps) joined to them with SequentialLR."""

from __future__ import annotations

import torch
from torch.optim import lr_scheduler as sch

from .config import EngineTrainConfig


def build(cfg: EngineTrainConfig, optimizer: torch.optim.Optimizer, total_steps: int) -> sch.LRScheduler:
    """The schedule of ``cfg.lr_schedule`` over ``total_steps`` optimizer steps."""
    # a share of the run (train.warmup_fraction) when no step count is given: the step count of a
    # run depends on the data size and the world size, which the config does not know
    wanted = cfg.warmup_steps or (max(1, int(total_steps * cfg.warmup_fraction)) if cfg.warmup_fraction > 0 else 0)
    warmup = min(wanted, max(total_steps - 1, 0))
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
