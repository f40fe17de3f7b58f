"""Processes: the process group from torchrun's environment through ``ignite.distributed``,
and which rank may write."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

#: a collective that waits longer than this ends the run (a rank died or hangs): the launcher's
#: bounded-time promise. Generous for a slow epoch on a shared CPU.
COLLECTIVE_TIMEOUT = timedelta(seconds=int(os.environ.get("MLX_COLLECTIVE_TIMEOUT", "600")))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def backend_for(device: str) -> str:
    return "nccl" if device == "cuda" else "gloo"


@contextlib.contextmanager
def process_group(device: str) -> Iterator[str | None]:
    """Join the job torchrun started (env://: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), gloo on
    the CPU and NCCL on CUDA; a single process needs no group. Leaves the group on exit if it made
    it (a launcher or caller that made one keeps it)."""
    import ignite.distributed as idist
    import torch.distributed as tdist

    if world_size() <= 1 or tdist.is_initialized():
        yield idist.backend()
        return
    backend = backend_for(device)
    idist.initialize(backend, timeout=COLLECTIVE_TIMEOUT)
    try:
        yield backend
    finally:
        idist.finalize()


def is_main(ctx: Any) -> bool:
    """The rank that writes run.json, checkpoints and artifacts: the core's ``ctx.dist`` where the
    launcher provides it, else global rank 0 of ignite's view."""
    dist = getattr(ctx, "dist", None)
    if dist is not None:
        return bool(dist.is_main)
    import ignite.distributed as idist

    return idist.get_rank() == 0
