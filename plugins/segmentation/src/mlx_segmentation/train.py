"""Training on the shared engine (mlx_torch.fit, on pytorch-ignite): this module holds only the
segmentation domain -- the loss (cross-entropy, ignore 255), the evaluation output and its
metrics (mIoU over the classes present, pixel accuracy, per-class IoU from Ignite's confusion
matrix), and the training-curve PNG. Loop, DDP, checkpoints, resume, early stopping, precision
and the poly schedule are the engine's (docs/engine.md)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlx_core import DataError, RunContext

from .data import IGNORE, SegData


# --- metrics ---------------------------------------------------------------------------------
def scores(conf: torch.Tensor) -> dict[str, Any]:
    """mIoU over the classes that occur (in truth or prediction), pixel accuracy, per-class IoU."""
    conf = conf.double().cpu()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    iou = torch.where(present, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
    return {
        "miou": float(iou[present].mean()) if present.any() else 0.0,
        "pixel_acc": float(tp.sum() / conf.sum().clamp(min=1)),
        "iou": [None if not p else round(float(v), 4) for v, p in zip(iou, present, strict=True)],
    }


def seg_loss(out: dict[str, torch.Tensor], target: torch.Tensor, aux_weight: float) -> torch.Tensor:
    loss = F.cross_entropy(out["out"], target, ignore_index=IGNORE)
    if "aux" in out and aux_weight > 0:
        loss = loss + aux_weight * F.cross_entropy(out["aux"], target, ignore_index=IGNORE)
    return loss


def metrics(num_classes: int):
    """Ignite metrics of one evaluation (summed over ranks by Ignite): the confusion matrix (pixels
    labelled 255 fall outside [0, num_classes) and are dropped) and the pixel-weighted loss."""
    from ignite.metrics import ConfusionMatrix, Loss

    def build(device: torch.device) -> dict[str, Any]:
        return {
            "confusion": ConfusionMatrix(num_classes, device=device),
            # cross-entropy averaged over labelled pixels, weighted by their count: the mean over
            # all labelled pixels of the split, as the loss is defined
            "loss": Loss(lambda logits, y: F.cross_entropy(logits, y, ignore_index=IGNORE),
                         batch_size=lambda y: int((y != IGNORE).sum()), device=device),
        }  # fmt: skip

    return build


def summarize(values: Mapping[str, Any]) -> dict[str, Any]:
    return {"loss": float(values["loss"]), **scores(values["confusion"])}


def collate(items: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.stack([a for a, _ in items])), torch.from_numpy(np.stack([b for _, b in items]))


def prepare(batch: tuple[torch.Tensor, torch.Tensor], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = batch
    # channels_last: much faster mkldnn convolutions on the CPU
    return x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last), y.to(device)


def eval_output(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = batch
    return model(x)["out"], y


# --- the training-curve chart ---------------------------------------------------------------
def plot_curve(history: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    tr = [(h["epoch"], h["train_loss"]) for h in history if h.get("train_loss") is not None]
    if tr:
        a1.plot(*zip(*tr, strict=True), "o-", label="train loss")
    a1.plot(ep, [h["val_loss"] for h in history], "s-", label="val loss")
    a1.set_xlabel("epoch")
    a1.set_ylabel("cross-entropy")
    a1.legend()
    a1.grid(alpha=0.3)
    a2.plot(ep, [h["val_miou"] for h in history], "o-", label="val mIoU")
    a2.plot(ep, [h["val_pixel_acc"] for h in history], "s-", label="val pixel acc")
    a2.set_ylim(0, 1)
    a2.set_xlabel("epoch (0 = before training)")
    a2.legend()
    a2.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


# --- the stage -------------------------------------------------------------------------------
def train(ctx: RunContext, data: SegData, model: nn.Module) -> nn.Module:
    from mlx_torch.fit import fit

    cfg = ctx.config.train
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(ctx.seed)
    model = model.to(memory_format=torch.channels_last)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = cfg.bn_momentum
    if len(data.train) < cfg.batch_size:
        raise DataError(
            f"training split {data.train.split!r} has {len(data.train)} images, fewer than train.batch_size={cfg.batch_size}"
        )
    trained = ctx.manifest.data.get("records", {}).get("trained", False)
    result = fit(
        ctx, model, data.train, data.val, cfg=cfg, epochs=cfg.epochs, batch_size=cfg.batch_size,
        optimizer=lambda params: _optimizer(cfg, params),
        loss_fn=lambda net, batch: seg_loss(net(batch[0]), batch[1], cfg.aux_weight),
        eval_fn=eval_output, metrics=metrics(data.num_classes), summarize=summarize, collate_fn=collate,
        prepare=prepare, on_epoch_start=lambda epoch: setattr(data.train, "epoch", epoch),
        initial_name="initial" if trained else "untrained",
    )  # fmt: skip
    if _is_main(ctx):
        _finish(ctx, data, result, trained)
    return result.model


def _is_main(ctx: RunContext) -> bool:
    from mlx_torch.dist import is_main

    return is_main(ctx)


def _optimizer(cfg: Any, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _finish(ctx: RunContext, data: SegData, result: Any, trained: bool) -> None:
    """Final metrics, the note on what was trained, the curve and the last checkpoint as artifacts."""
    history, ev = result.history, result.last
    initial, last = history[0], history[-1]
    ctx.record("val_iou_per_class", {name: v for name, v in zip(data.classes, ev["iou"], strict=True) if v is not None})
    ctx.log_metrics({"val_miou": last["val_miou"], "val_pixel_acc": last["val_pixel_acc"], "epochs": last["epoch"]})
    if last["epoch"] > 0:
        ctx.record("trained", True)
        origin = "from random init (trained from scratch)" if not trained else f"from {ctx.config.model.weights}"
        stopped = f" (early stopping after epoch {result.stopped_early})" if result.stopped_early else ""
        ctx.note(
            f"trained {origin} for {last['epoch']} epochs{stopped} on "
            f"{'generated sample' if data.generated else 'the given'} data: "
            f"val mIoU {initial['val_miou']:.3f} -> {last['val_miou']:.3f}"
        )
    with ctx.atomic_path("train", "curve.png") as tmp:
        plot_curve(history, tmp, f"{ctx.config.model.arch} on {'sample data' if data.generated else data.root.name}")
    ctx.add_artifact(ctx.path("train", "curve.png"), kind="chart")
    if result.checkpoint is not None:
        ctx.add_artifact(result.checkpoint, kind="checkpoint", epoch=int(result.checkpoint.stem.split("-")[1]))
