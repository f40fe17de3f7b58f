"""torchvision segmentation models, optionally loaded from a local checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mlx_core import DataError


class LogitsOnly(nn.Module):
    """torchvision segmentation models return ``{"out": ..., "aux": ...}``; exporters and
    runtimes want one tensor: the ``out`` logits (N x classes x H x W)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def build(arch: str, num_classes: int, aux_loss: bool) -> nn.Module:
    from torchvision.models import segmentation as seg

    factory = getattr(seg, arch)
    kwargs = {"weights": None, "weights_backbone": None, "num_classes": num_classes, "aux_loss": aux_loss}
    return factory(**kwargs)


def _short(keys: list[str], n: int = 4) -> str:
    if not keys:
        return "none"
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"model.weights {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling fails in many ways (pickle, zip, RuntimeError); all mean "not a checkpoint"
        raise DataError(f"model.weights {path} is not a readable torch checkpoint ({type(exc).__name__})") from None
    # torchvision's reference scripts save {"model": state_dict, "optimizer": ..., ...}
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError(f"model.weights {path} holds no state dict of tensors (expected a torchvision .pth checkpoint)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_weights(model: nn.Module, path: str | Path, arch: str) -> None:
    """Load a local checkpoint; a file of another architecture or class count is refused with
    the missing / unexpected / mismatched keys named."""
    state = read_state_dict(path)
    own = model.state_dict()
    if not any(k.startswith("aux_classifier.") for k in own):
        # torchvision's released weights carry the aux head; a model built without it just skips it
        state = {k: v for k, v in state.items() if not k.startswith("aux_classifier.")}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected:
        raise DataError(
            f"model.weights {path} does not fit {arch}: {len(missing)} missing keys ({_short(missing)}); "
            f"{len(unexpected)} unexpected keys ({_short(unexpected)})"
        )
    if mismatched:
        raise DataError(
            f"model.weights {path} does not fit {arch}: shape mismatches in {_short(mismatched, 3)} (check model.num_classes)"
        )
    model.load_state_dict(state)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(ctx, data) -> nn.Module:
    """The model stage: a torchvision architecture, random init or a local checkpoint."""
    cfg = ctx.config.model
    torch.manual_seed(ctx.seed)
    model = build(cfg.arch, cfg.num_classes, cfg.aux_loss)
    if cfg.weights:
        load_weights(model, cfg.weights, cfg.arch)
        ctx.record("trained", True)
        ctx.record("weights", str(cfg.weights))
    else:
        ctx.record("trained", False)
        ctx.note(
            f"{cfg.arch} starts from random init (no pretrained weights are downloaded); its metrics are from training from scratch"
        )
    n = count_parameters(model)
    ctx.record("model", {"arch": cfg.arch, "num_classes": cfg.num_classes, "aux_loss": cfg.aux_loss, "parameters": n})
    ctx.log(f"[model] {cfg.arch}: {n / 1e6:.2f}M parameters, {cfg.num_classes} classes")
    return model
