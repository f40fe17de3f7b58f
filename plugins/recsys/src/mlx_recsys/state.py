"""Moving weights between a sharded DistributedModelParallel and full (unsharded) tensors,
and scoring a held-out split with an unsharded model."""

from __future__ import annotations

from typing import Any

import torch
from torch.distributed._shard.sharded_tensor import ShardedTensor

from .config import RecsysConfig


def _is_dtensor(t: Any) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover
        return False
    return isinstance(t, DTensor)


def gather_full_state(dmp: torch.nn.Module, rank: int) -> dict[str, torch.Tensor]:
    """Full tensors of every state entry on rank 0 (a collective: every rank must call it)."""
    out: dict[str, torch.Tensor] = {}
    for name, t in dmp.state_dict().items():
        if isinstance(t, ShardedTensor):
            full = torch.empty(t.size(), dtype=t.dtype) if rank == 0 else None
            t.gather(dst=0, out=full)
            if rank == 0:
                out[name] = full
        elif _is_dtensor(t):
            full = t.full_tensor()
            if rank == 0:
                out[name] = full.detach().clone()
        elif rank == 0:
            out[name] = t.detach().clone()
    return out


def copy_into(dmp: torch.nn.Module, full: dict[str, torch.Tensor]) -> None:
    """Copy full tensors into this rank's shards (the state dict entries alias the weights)."""
    with torch.no_grad():
        for name, t in dmp.state_dict().items():
            if name not in full:
                raise KeyError(f"checkpoint has no entry {name!r}")
            src = full[name]
            if isinstance(t, ShardedTensor):
                for shard in t.local_shards():
                    off, size = shard.metadata.shard_offsets, shard.metadata.shard_sizes
                    idx = tuple(slice(o, o + s) for o, s in zip(off, size, strict=True))
                    shard.tensor.copy_(src[idx])
            elif _is_dtensor(t):
                raise NotImplementedError(f"resuming DTensor state {name!r} is not supported")
            else:
                t.copy_(src)


def predict_probs(model: torch.nn.Module, batches) -> tuple[torch.Tensor, torch.Tensor]:
    probs, labels = [], []
    with torch.no_grad():
        for dense, kjt, y in batches:
            probs.append(torch.sigmoid(model(dense, kjt).squeeze(-1)))
            labels.append(y)
    return torch.cat(probs), torch.cat(labels)


def evaluate(
    cfg: RecsysConfig, state: dict[str, torch.Tensor], spec: dict[str, Any], split: str = "val"
) -> dict[str, float]:
    from . import data as D
    from .metrics import auc, logloss, normalized_entropy
    from .model import build_float

    model = build_float(cfg, state)
    p, y = predict_probs(model, D.eval_batches(spec, 1024, split))
    return {"auc": auc(p, y), "ne": normalized_entropy(p, y), "logloss": logloss(p, y), "examples": int(y.numel())}
