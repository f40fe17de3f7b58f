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


def _gather(t: Any, rank: int) -> torch.Tensor | None:
    if isinstance(t, ShardedTensor):
        full = torch.empty(t.size(), dtype=t.dtype) if rank == 0 else None
        t.gather(dst=0, out=full)
        return full
    if _is_dtensor(t):
        full = t.full_tensor()
        return full.detach().clone() if rank == 0 else None
    return t.detach().clone() if rank == 0 else None


def _copy_shards(t: Any, src: torch.Tensor, name: str) -> None:
    if isinstance(t, ShardedTensor):
        for shard in t.local_shards():
            off, size = shard.metadata.shard_offsets, shard.metadata.shard_sizes
            idx = tuple(slice(o, o + s) for o, s in zip(off, size, strict=True))
            shard.tensor.copy_(src[idx])
    elif _is_dtensor(t):
        raise NotImplementedError(f"resuming DTensor state {name!r} is not supported")
    else:
        t.copy_(src)


def _opt_entries(dmp: torch.nn.Module) -> list[tuple[str, Any]]:
    """The fused (in-backward) sparse optimizer's state tensors, e.g. row-wise Adagrad's momentum."""
    out = []
    for param, st in dmp.fused_optimizer.state_dict()["state"].items():
        for key, t in st.items():
            if isinstance(t, torch.Tensor):
                out.append((f"{param}|{key}", t))
    return out


def local_optimizer_state(dmp: torch.nn.Module) -> dict[str, torch.Tensor]:
    """This rank's shards of the fused sparse optimizer's state (no collective: ranks hold
    different tables, so their state dicts differ). Keys: ``name@offsets``."""
    out = {}
    for name, t in _opt_entries(dmp):
        if isinstance(t, ShardedTensor):
            for shard in t.local_shards():
                off = ",".join(str(o) for o in shard.metadata.shard_offsets)
                out[f"{name}@{off}"] = shard.tensor.detach().clone()
        elif _is_dtensor(t):
            out[f"{name}@dtensor"] = t.to_local().detach().clone()
        else:
            out[f"{name}@"] = t.detach().clone()
    return out


def load_local_optimizer_state(dmp: torch.nn.Module, saved: dict[str, torch.Tensor]) -> None:
    """Inverse of local_optimizer_state on the same plan (same world size and sharding)."""
    with torch.no_grad():
        for name, t in _opt_entries(dmp):
            if isinstance(t, ShardedTensor):
                targets = [(",".join(str(o) for o in sh.metadata.shard_offsets), sh.tensor) for sh in t.local_shards()]
            elif _is_dtensor(t):
                targets = [("dtensor", t.to_local())]
            else:
                targets = [("", t)]
            for off, dst in targets:
                key = f"{name}@{off}"
                if key not in saved or saved[key].shape != dst.shape:
                    raise KeyError(f"saved optimizer state has no shard {key!r} of shape {tuple(dst.shape)}")
                dst.copy_(saved[key])


def copy_into(dmp: torch.nn.Module, full: dict[str, torch.Tensor]) -> None:
    """Copy full tensors into this rank's shards (the state dict entries alias the weights)."""
    with torch.no_grad():
        for name, t in dmp.state_dict().items():
            if name not in full:
                raise KeyError(f"checkpoint has no entry {name!r}")
            _copy_shards(t, full[name], name)


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
