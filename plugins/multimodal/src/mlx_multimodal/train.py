"""Training on the shared engine (mlx_torch.fit, on pytorch-ignite): this module holds only the
VQA domain -- the loss (the FLAVA classifier's cross-entropy on the answer label), the evaluation
output and its metrics (Ignite's top-1 accuracy and loss each epoch; the standard VQA accuracy
against every given answer at the end), the majority and question-only baselines, the
``train.max_minutes`` budget and the curve PNG. Loop, DDP, checkpoints, resume, early stopping,
precision, clipping and the warm-up + cosine schedule are the engine's (docs/engine.md)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mlx_core.faults import kill_point

from .data import to_float
from .metrics import split_vqa_accuracy  # the standard VQA accuracy, against every given answer


class Questions(torch.utils.data.Dataset):
    """A ``data.Split`` as a map-style dataset of (uint8 image, token ids, answer label)."""

    def __init__(self, split: Any) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.split
        return s.images[i], s.input_ids[i], s.labels[i]


def prepare(batch: Any, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    img, ids, lab = batch
    return to_float(img.to(device, non_blocking=True)), ids.to(device), lab.to(device)


def vqa_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    from mlx_torch.fit import unwrap

    img, ids, lab = batch
    return unwrap(model).loss(model(img, ids), lab)  # the forward through DDP (gradient sync), FLAVA's loss


def eval_output(model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    img, ids, lab = batch
    return model(img, ids), lab


def freeze_unused(model: nn.Module, split: Any, device: str) -> list[str]:
    """Freeze the parameters the VQA forward never reaches (FLAVA's poolers, contrastive
    projections, mask token, ...), found by one backward on two questions in eval mode (no dropout:
    no random numbers drawn). DDP needs a gradient for every trainable parameter; AdamW skipped
    these anyway (no gradient), so training is unchanged."""
    model.eval()
    batch = prepare((split.images[:2], split.input_ids[:2], split.labels[:2]), device)
    vqa_loss(model, batch).backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    for name, p in model.named_parameters():
        p.grad = None
        if name in unused:
            p.requires_grad_(False)
    return unused


def metrics(device: torch.device) -> dict[str, Any]:
    """Ignite metrics of one evaluation (summed over ranks by Ignite): top-1 accuracy against the
    label and the mean cross-entropy."""
    from ignite.metrics import Accuracy, Loss

    return {"acc": Accuracy(device=device), "loss": Loss(F.cross_entropy, device=device)}


def summarize(values: Mapping[str, Any]) -> dict[str, float]:
    return {"acc": float(values["acc"]), "loss": float(values["loss"])}


def time_budget(ctx: Any, cfg: Any):
    """``train.max_minutes``: after each logged epoch, stop the trainer once this invocation's
    training wall time reaches the budget. Rank 0's clock decides for every rank (broadcast), so
    no rank trains on while the others stopped."""
    from ignite.engine import Engine, Events

    from mlx_torch.dist import is_main
    from mlx_torch.fit import TrainEvents

    def attach(trainer: Engine, evaluator: Engine) -> None:
        clock: dict[str, float] = {}

        @trainer.on(Events.STARTED)
        def _start(_: Engine) -> None:
            clock["t0"] = time.perf_counter()

        @trainer.on(TrainEvents.EPOCH_LOGGED)
        def _check(engine: Engine) -> None:
            import ignite.distributed as idist

            epoch = engine.state.epoch
            spent = time.perf_counter() - clock["t0"] >= cfg.max_minutes * 60
            stop = int(idist.broadcast(torch.tensor(int(spent)), src=0)) if idist.get_world_size() > 1 else spent
            if stop and epoch < cfg.epochs:
                if is_main(ctx):
                    ctx.note(f"stopped after epoch {epoch}: train.max_minutes={cfg.max_minutes} reached")
                engine.terminate()

    return attach


def plot_curve(
    path: Any, history: list[dict[str, Any]], baseline: float, question_baseline: float | None = None
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    tr = [(h["epoch"], h["train_loss"]) for h in history if h.get("train_loss") is not None]
    if tr:
        ax[0].plot(*zip(*tr, strict=True), "o-", label="train")
    ax[0].plot(ep, [h["val_loss"] for h in history], "o-", label="held-out")
    ax[0].set_xlabel("epoch (0 = before training)")
    ax[0].set_ylabel("cross-entropy")
    ax[0].legend()
    ax[1].plot(ep, [h["val_acc"] for h in history], "o-", label="held-out accuracy")
    ax[1].axhline(baseline, color="grey", ls="--", label=f"majority answer ({baseline:.2f})")
    if question_baseline is not None:
        ax[1].axhline(question_baseline, color="tab:red", ls=":", label=f"question only ({question_baseline:.2f})")
    ax[1].set_xlabel("epoch")
    ax[1].set_ylim(0, 1)
    ax[1].legend()
    fig.suptitle("FLAVA VQA training")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=90)
    plt.close(fig)


def train(ctx: Any, data: Any, model: Any) -> Any:
    from mlx_torch.dist import is_main
    from mlx_torch.fit import fit

    cfg = ctx.config.train
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(ctx.seed)
    batch_size = cfg.batch_size
    if len(data.train) < batch_size:  # the engine trains on full batches only: one batch of all of them
        batch_size = len(data.train)
        if is_main(ctx):
            ctx.note(f"train.batch_size={cfg.batch_size} is more than the {batch_size} training questions: "
                     f"batches of {batch_size}")  # fmt: skip
    trained = ctx.manifest.data.get("records", {}).get("trained", False)
    unused = freeze_unused(model.to(ctx.device), data.train, ctx.device)
    if is_main(ctx):
        ctx.record("frozen_unused_parameters", unused)
    handlers = [time_budget(ctx, cfg)] if cfg.max_minutes else []
    t0 = time.perf_counter()
    result = fit(
        ctx, model, Questions(data.train), Questions(data.val), cfg=cfg, epochs=cfg.epochs,
        batch_size=batch_size,
        optimizer=lambda params: torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
        loss_fn=vqa_loss, eval_fn=eval_output, metrics=metrics, summarize=summarize, prepare=prepare,
        # test-only fault point (mlx_core.faults) on every rank, not only the main one
        on_epoch_start=lambda epoch: kill_point(f"{ctx.plugin}:epoch_start:{epoch}"),
        initial_name="initial" if trained else "untrained", handlers=handlers,
    )  # fmt: skip
    if is_main(ctx):
        _finish(ctx, data, result, time.perf_counter() - t0)
    return result.model


def _finish(ctx: Any, data: Any, result: Any, seconds: float) -> None:
    """Final metrics (with the standard VQA accuracy and both baselines), the curve, the newest
    checkpoint as an artifact."""
    history = result.history
    last = history[-1]
    epochs = [h for h in history if h["epoch"] >= 1]
    with ctx.atomic_path("train", "curve.png") as tmp:
        plot_curve(tmp, history, data.majority_baseline, data.question_baseline)
    ctx.add_artifact(ctx.path("train", "curve.png"), kind="plot")
    if result.checkpoint is not None:
        ctx.add_artifact(result.checkpoint, kind="checkpoint", epoch=int(result.checkpoint.stem.split("-")[1]))
    ctx.log_metrics({"final_val_acc": last["val_acc"], "majority_baseline": data.majority_baseline,
                     "final_val_vqa_acc": split_vqa_accuracy(result.model, data.val, data.answers, ctx.device),
                     "question_only_baseline": data.question_baseline, "epochs": last["epoch"],
                     "best_val_acc": max(h["val_acc"] for h in epochs or history), "train_seconds": seconds})  # fmt: skip
    if last["epoch"] > 0:
        ctx.record("trained", True)
