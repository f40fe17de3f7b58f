"""Processes: the process group from torchrun's environment through ``ignite.distributed``,
and which rank may write."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

#: a collective that waits longer than this ends the run (a rank died or hangs): the launcher
#: hands its timeout to every worker (ctx.dist.timeout_s, env MLX_COLLECTIVE_TIMEOUT); this is
#: the fallback outside the core launcher (plain torchrun)
DEFAULT_TIMEOUT_S = 300.0


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def backend_for(device: str) -> str:
    return "nccl" if device == "cuda" else "gloo"


@contextlib.contextmanager
def process_group(device: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[str | None]:
    """Join the job torchrun started (env://: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), gloo on
    the CPU and NCCL on CUDA; a single process needs no group. Leaves the group on exit if it made
    it (a launcher or caller that made one keeps it)."""
    import ignite.distributed as idist
    import torch.distributed as tdist

    if world_size() <= 1 or tdist.is_initialized():
        yield idist.backend()
        return
    backend = backend_for(device)
    idist.initialize(backend, timeout=timedelta(seconds=timeout_s))
    try:
        yield backend
    finally:
        idist.finalize()


def timeout_s(ctx: Any) -> float:
    dist = getattr(ctx, "dist", None)
    if dist is not None:
        return float(dist.timeout_s)
    return float(os.environ.get("MLX_COLLECTIVE_TIMEOUT", "") or DEFAULT_TIMEOUT_S)


def weights_sha256(model: Any) -> str:
    """A digest of the model's parameters and buffers: equal on every rank after DDP training."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        # the raw bytes (numpy has no bfloat16): the same digest as .numpy().tobytes() where numpy can
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def sync_buffers(model: Any) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank, as DDP itself broadcasts them
    before each training forward: after an epoch's last step each rank has updated its own, and
    the evaluation, the checkpoint and the model every rank returns must all be rank 0's."""
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1:
        for buffer in model.buffers():
            tdist.broadcast(buffer.data, src=0)


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (one process: ``[obj]``)."""
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized()) or tdist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * tdist.get_world_size()
    tdist.all_gather_object(out, obj)
    return out


def is_main(ctx: Any) -> bool:
    """The rank that writes run.json, checkpoints and artifacts: the core's ``ctx.dist`` where the
    launcher provides it, else global rank 0 of ignite's view."""
    dist = getattr(ctx, "dist", None)
    if dist is not None:
        return bool(dist.is_main)
    import ignite.distributed as idist

    return idist.get_rank() == 0
