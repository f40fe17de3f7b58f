"""Training: cross-entropy (ignore 255), poly LR, val mIoU / pixel accuracy each epoch,
a checkpoint each epoch, resume from the last one, and a training-curve PNG."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlx_core import DataError, RunContext
from mlx_core.faults import kill_point

from .data import IGNORE, SegData

CKPT = re.compile(r"epoch-(\d+)\.pt$")


# --- metrics ---------------------------------------------------------------------------------
def confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """num_classes x num_classes counts (rows: truth, columns: prediction), ignoring 255."""
    keep = target != IGNORE
    idx = target[keep].to(torch.int64) * num_classes + pred[keep].to(torch.int64)
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes).cpu()


def scores(conf: torch.Tensor) -> dict[str, Any]:
    """mIoU over the classes that occur (in truth or prediction), pixel accuracy, per-class IoU."""
    conf = conf.double()
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


def _loader(dataset, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False):
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=0, generator=g,
        collate_fn=lambda items: (torch.from_numpy(np.stack([a for a, _ in items])), torch.from_numpy(np.stack([b for _, b in items]))),
    )  # fmt: skip


@torch.no_grad()
def evaluate(model: nn.Module, dataset, num_classes: int, device: str, batch_size: int, ctx: RunContext | None = None,
             desc: str = "evaluate") -> dict[str, Any]:  # fmt: skip
    model.eval()
    conf = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    total, n = 0.0, 0
    loader = _loader(dataset, batch_size, shuffle=False)
    items = ctx.track(loader, desc) if ctx is not None else loader
    for x, y in items:
        x = x.to(device).contiguous(memory_format=torch.channels_last)
        y = y.to(device)
        logits = model(x)["out"]
        total += float(F.cross_entropy(logits, y, ignore_index=IGNORE, reduction="sum"))
        n += int((y != IGNORE).sum())
        conf += confusion(logits.argmax(1), y, num_classes)
    return {"loss": total / max(n, 1), **scores(conf)}


# --- checkpoints -----------------------------------------------------------------------------
def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    found = [(int(m.group(1)), p) for p in folder.glob("epoch-*.pt") if (m := CKPT.search(p.name))]
    return sorted(found)


def save_checkpoint(ctx: RunContext, state: dict[str, Any], epoch: int, keep: int) -> Path:
    with ctx.atomic_path("checkpoints", f"epoch-{epoch:03d}.pt") as tmp:
        torch.save(state, tmp)
    path = ctx.path("checkpoints", f"epoch-{epoch:03d}.pt")
    for _, old in checkpoints(path.parent)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling fails in many ways (pickle, zip, RuntimeError); all mean "not a checkpoint"
        raise DataError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})".splitlines()[0]) from None


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
    cfg = ctx.config.train
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = ctx.device
    torch.manual_seed(ctx.seed)
    model = model.to(device).to(memory_format=torch.channels_last)  # much faster mkldnn convs on CPU
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = cfg.bn_momentum
    opt = _optimizer(cfg, model)
    if len(data.train) < cfg.batch_size:
        raise DataError(
            f"training split {data.train.split!r} has {len(data.train)} images, fewer than train.batch_size={cfg.batch_size}"
        )
    steps_per_epoch = len(data.train) // cfg.batch_size
    total_steps = max(1, cfg.epochs * steps_per_epoch)
    folder = ctx.path("checkpoints")
    found = checkpoints(folder) if ctx.resumed else []
    ev: dict[str, Any] | None = None
    if found:
        history, step, start = _resume(ctx, model, opt, found[-1])
        _log_checkpointed_epochs(ctx, history)
    else:
        t0 = time.perf_counter()
        ev = evaluate(model, data.val, data.num_classes, device, cfg.batch_size, ctx, "evaluate untrained")
        history, step, start = [_row(0, None, ev, 0.0, t0)], 0, 1
    initial = history[0]
    trained = ctx.manifest.data.get("records", {}).get("trained", False)
    init_name = "initial" if trained else "untrained"
    if not found:  # a resumed run logged its step 0 in the first invocation
        ctx.log_metrics(
            {f"{init_name}_val_miou": initial["val_miou"], f"{init_name}_val_pixel_acc": initial["val_pixel_acc"]},
            step=0,
        )

    for epoch in range(start, cfg.epochs + 1):
        t0 = time.perf_counter()
        train_loss, lr, step = _train_epoch(ctx, data, model, opt, epoch, step, total_steps, steps_per_epoch)
        ev = evaluate(model, data.val, data.num_classes, device, cfg.batch_size, ctx, f"evaluate epoch {epoch}")
        row = _row(epoch, train_loss, ev, lr, t0)
        history.append(row)
        state = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "optimizer": opt.state_dict(),
                 "epoch": epoch, "step": step, "history": history, "rng": torch.get_rng_state()}  # fmt: skip
        save_checkpoint(ctx, state, epoch, cfg.keep_checkpoints)
        kill_point(f"segmentation:before_log:{epoch}")  # test-only (mlx_core.faults)
        # logged once its checkpoint exists, so no logged epoch lacks one; an epoch checkpointed
        # but killed before this line is logged by the resume, from the checkpoint's history
        ctx.log_metrics({k: row[k] for k in ("train_loss", "val_loss", "val_miou", "val_pixel_acc", "lr")}, step=epoch)

    if ev is None:  # resumed after the last epoch: nothing was evaluated in this invocation
        ev = evaluate(model, data.val, data.num_classes, device, cfg.batch_size)
    _finish(ctx, data, history, ev, trained, folder)
    model.eval()
    return model


def _optimizer(cfg: Any, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _row(epoch: int, train_loss: float | None, ev: dict[str, Any], lr: float, t0: float) -> dict[str, Any]:
    """One history row: an epoch's losses, validation figures, last learning rate and seconds."""
    return {"epoch": epoch, "train_loss": train_loss, "val_loss": ev["loss"], "val_miou": ev["miou"],
            "val_pixel_acc": ev["pixel_acc"], "lr": lr, "seconds": time.perf_counter() - t0}  # fmt: skip


def _log_checkpointed_epochs(ctx: RunContext, history: list[dict[str, Any]]) -> None:
    """Log the epochs a killed run had checkpointed but not yet logged (the kill landed between
    the checkpoint and its row): their rows are in the checkpoint's history."""
    logged = {r.get("step") for r in ctx.manifest.stage("train").get("history", [])}
    for row in history:
        if row["epoch"] >= 1 and row["epoch"] not in logged:
            ctx.log_metrics({k: row[k] for k in ("train_loss", "val_loss", "val_miou", "val_pixel_acc", "lr")},
                            step=row["epoch"])  # fmt: skip


def _resume(
    ctx: RunContext, model: nn.Module, opt: torch.optim.Optimizer, last: tuple[int, Path]
) -> tuple[list[dict[str, Any]], int, int]:
    """Load the last checkpoint into model and optimizer: (history, step, first epoch to run)."""
    last_epoch, path = last
    state = load_checkpoint(path)
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise DataError(
            f"checkpoint {path} does not fit this run's model/optimizer: {str(exc).splitlines()[0][:200]}"
        ) from None
    torch.set_rng_state(state["rng"])
    ctx.log(f"resuming from {path.relative_to(ctx.run_dir)} (epoch {last_epoch} of {ctx.config.train.epochs})")
    ctx.record("resumed_from_epoch", last_epoch)
    return list(state["history"]), int(state["step"]), last_epoch + 1


def _train_epoch(
    ctx: RunContext, data: SegData, model: nn.Module, opt: torch.optim.Optimizer, epoch: int, step: int,
    total_steps: int, steps_per_epoch: int,
) -> tuple[float, float, int]:  # fmt: skip
    """One pass over the training split (poly learning-rate decay by global step): (mean train
    loss, last learning rate, global step after it)."""
    cfg, device = ctx.config.train, ctx.device
    model.train()
    data.train.epoch = epoch
    loader = _loader(data.train, cfg.batch_size, shuffle=True, seed=ctx.seed * 100_003 + epoch, drop_last=True)
    running, seen, lr = 0.0, 0, 0.0
    with ctx.progress(f"epoch {epoch}/{cfg.epochs}", total=steps_per_epoch) as advance:
        for x, y in loader:
            lr = cfg.lr * (1 - step / total_steps) ** cfg.poly_power
            for group in opt.param_groups:
                group["lr"] = lr
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            y = y.to(device)
            loss = seg_loss(model(x), y, cfg.aux_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = loss.item()
            if not np.isfinite(value):
                raise DataError(f"training diverged at epoch {epoch} (loss {value}); lower train.lr (now {cfg.lr})")
            running += value * x.shape[0]
            seen += x.shape[0]
            step += 1
            advance(1)
    return running / max(seen, 1), lr, step


def _finish(
    ctx: RunContext, data: SegData, history: list[dict[str, Any]], ev: dict[str, Any], trained: bool, folder: Path
) -> None:
    """Final metrics, the note on what was trained, the curve and the last checkpoint as artifacts."""
    initial, last = history[0], history[-1]
    ctx.record("val_iou_per_class", {name: v for name, v in zip(data.classes, ev["iou"], strict=True) if v is not None})
    ctx.log_metrics({"val_miou": last["val_miou"], "val_pixel_acc": last["val_pixel_acc"], "epochs": last["epoch"]})
    if last["epoch"] > 0:
        ctx.record("trained", True)
        origin = "from random init (trained from scratch)" if not trained else f"from {ctx.config.model.weights}"
        ctx.note(
            f"trained {origin} for {last['epoch']} epochs on {'generated sample' if data.generated else 'the given'} data: "
            f"val mIoU {initial['val_miou']:.3f} -> {last['val_miou']:.3f}"
        )
    with ctx.atomic_path("train", "curve.png") as tmp:
        plot_curve(history, tmp, f"{ctx.config.model.arch} on {'sample data' if data.generated else data.root.name}")
    ctx.add_artifact(ctx.path("train", "curve.png"), kind="chart")
    found = checkpoints(folder)
    if found:
        ctx.add_artifact(found[-1][1], kind="checkpoint", epoch=found[-1][0])
