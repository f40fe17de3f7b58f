"""Train stage: AdamW on (image, question tokens, answer label), held-out accuracy each epoch
against the majority-answer baseline, a checkpoint per epoch (resumable), a curve PNG."""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from .data import to_float
from .metrics import split_vqa_accuracy  # the standard VQA accuracy, against every given answer

CKPT = ("checkpoints", "last.pt")


@torch.no_grad()
def evaluate(model: Any, split: Any, device: str, batch_size: int = 256) -> tuple[float, float]:
    """(accuracy, mean loss) of ``model`` on ``split``."""
    model.eval()
    correct, loss, n = 0, 0.0, len(split)
    for i in range(0, n, batch_size):
        img = to_float(split.images[i : i + batch_size]).to(device)
        ids = split.input_ids[i : i + batch_size].to(device)
        lab = split.labels[i : i + batch_size].to(device)
        logits = model(img, ids)
        loss += float(torch.nn.functional.cross_entropy(logits, lab, reduction="sum"))
        correct += int((logits.argmax(-1) == lab).sum())
    return correct / n, loss / n


def plot_curve(
    path: Any, history: list[dict[str, float]], baseline: float, question_baseline: float | None = None
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    ax[0].plot(ep, [h["val_loss"] for h in history], "o-", label="held-out")
    ax[0].set_xlabel("epoch")
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


def lr_at(step: int, total: int, peak: float, warmup: float = 0.1) -> float:
    """Linear warm-up over the first ``warmup`` share of the steps, then cosine decay to 0.

    A function of the step (not a scheduler object) so that ``--from`` with more epochs simply
    continues on the schedule of the new total."""
    w = max(1, int(total * warmup))
    if step < w:
        return peak * (step + 1) / w
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - w) / max(1, total - w))))


def train(ctx: Any, data: Any, model: Any) -> Any:
    cfg = ctx.config.train
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dev = ctx.device
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = (len(data.train) + cfg.batch_size - 1) // cfg.batch_size
    total_steps = cfg.epochs * steps_per_epoch
    history: list[dict[str, float]] = []
    start = 1
    ckpt_path = ctx.path(*CKPT)
    if ctx.resumed and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=dev, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        history = list(state["history"])
        start = int(state["epoch"]) + 1
        ctx.note(f"resumed from {ckpt_path} after epoch {state['epoch']}")
        if start > cfg.epochs:
            ctx.note(f"no epoch left to train: the checkpoint already covers train.epochs={cfg.epochs}")
    gen = torch.Generator().manual_seed(ctx.seed)
    if start > 1:  # the same shuffles and dropout masks as an uninterrupted run
        gen.set_state(state["shuffle_rng"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
    t0 = time.perf_counter()
    elapsed_before = history[-1]["elapsed_s"] if history else 0.0
    for epoch in range(start, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(len(data.train), generator=gen)
        total, seen = 0.0, 0
        with ctx.progress(f"epoch {epoch}/{cfg.epochs}", total=steps_per_epoch) as advance:
            for s in range(steps_per_epoch):
                for group in opt.param_groups:
                    group["lr"] = lr_at((epoch - 1) * steps_per_epoch + s, total_steps, cfg.lr)
                idx = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
                img = to_float(data.train.images[idx]).to(dev)
                ids = data.train.input_ids[idx].to(dev)
                lab = data.train.labels[idx].to(dev)
                loss = model.loss(model(img, ids), lab)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
                advance(1)
        acc, vloss = evaluate(model, data.val, dev)
        row = {"epoch": epoch, "train_loss": total / seen, "val_loss": vloss, "val_acc": acc,
               "majority_baseline": data.majority_baseline,
               "elapsed_s": elapsed_before + time.perf_counter() - t0}  # fmt: skip
        history.append(row)
        with ctx.atomic_path(*CKPT) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                        "shuffle_rng": gen.get_state(), "torch_rng": torch.get_rng_state(),
                        "history": history}, tmp)  # fmt: skip
        # logged after the checkpoint: a logged epoch is always one a resume starts after
        ctx.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
        if cfg.max_minutes and row["elapsed_s"] >= cfg.max_minutes * 60 and epoch < cfg.epochs:
            ctx.note(f"stopped after epoch {epoch}: train.max_minutes={cfg.max_minutes} reached")
            break
    ctx.add_artifact(ckpt_path, kind="checkpoint", epoch=history[-1]["epoch"])
    with ctx.atomic_path("train", "curve.png") as tmp:
        plot_curve(tmp, history, data.majority_baseline, data.question_baseline)
    ctx.add_artifact(ctx.path("train", "curve.png"), kind="plot")
    last = history[-1]
    ctx.log_metrics({"final_val_acc": last["val_acc"], "majority_baseline": data.majority_baseline,
                     "final_val_vqa_acc": split_vqa_accuracy(model, data.val, data.answers, dev),
                     "question_only_baseline": data.question_baseline,
                     "best_val_acc": max(h["val_acc"] for h in history), "train_seconds": last["elapsed_s"]})  # fmt: skip
    ctx.record("trained", True)
    model.eval()
    return model
