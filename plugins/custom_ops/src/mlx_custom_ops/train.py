"""Train stage: Paddle's high-level ``Model.prepare/fit`` with Accuracy, or a plain torch loop.

Both write a checkpoint per epoch under ``checkpoints/`` (atomically), resume from the last one
under ``--from``, log loss/accuracy per epoch and draw ``train/curve.png``.
"""

from __future__ import annotations

import math
import os
import shutil

import numpy as np

from mlx_core import StageFailed


def _plot(ctx, history: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    a.plot(ep, [h["val_loss"] for h in history], "o-", label="valid")
    a.set_xlabel("epoch"), a.set_ylabel("cross-entropy"), a.legend()
    b.plot(ep, [h["train_acc"] for h in history], "o-", label="train")
    b.plot(ep, [h["val_acc"] for h in history], "o-", label="valid")
    b.set_xlabel("epoch"), b.set_ylabel("accuracy"), b.set_ylim(0, 1.02), b.legend()
    cfg = ctx.config.model
    fig.suptitle(f"RedNet-{cfg.depth} ({cfg.backend}, involution={cfg.impl})")
    fig.tight_layout()
    with ctx.atomic_path("train", "curve.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    ctx.add_artifact(ctx.path("train", "curve.png"), kind="plot")


def _earlier_history(ctx) -> list[dict]:
    """Per-epoch rows the manifest kept from an earlier invocation (``--from``)."""
    if not ctx.resumed:
        return []
    rows = ctx.manifest.stage("train").get("history", [])
    return [{**r, "epoch": r.get("epoch", r.get("step", 0))} for r in rows if "train_loss" in r]


def _finish(ctx, history: list[dict]) -> None:
    if not history:
        raise StageFailed("training ran no epoch")
    _plot(ctx, history)
    last = history[-1]
    if not all(math.isfinite(last[k]) for k in ("train_loss", "val_loss")):
        raise StageFailed(f"training diverged: loss {last['train_loss']} (lower train.lr)")
    ctx.record("trained", True)


def run(ctx, data, model):
    threads = ctx.config.train.threads
    if ctx.config.model.backend == "paddle":
        if threads:
            import paddle

            paddle.base.core.set_num_threads(threads)  # Paddle's CPU math library
        return _paddle(ctx, data, model)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return _torch(ctx, data, model)


# --- Paddle -------------------------------------------------------------------------------------
def _paddle(ctx, data, net):
    import paddle
    from paddle.static import InputSpec

    cfg, size = ctx.config.train, ctx.config.data.image_size
    Images, EpochBatches = _paddle_data_classes(ctx)
    train_ds, val_ds = Images(data.train, True), Images(data.valid, False)
    steps = math.ceil(len(train_ds) / cfg.batch_size)
    model = paddle.Model(net, inputs=[InputSpec([None, 3, size, size], "float32", "image")],
                         labels=[InputSpec([None, 1], "int64", "label")])  # fmt: skip
    sched = paddle.optimizer.lr.CosineAnnealingDecay(cfg.lr, T_max=cfg.epochs * steps)
    opt = paddle.optimizer.Momentum(sched, momentum=0.9, parameters=net.parameters(), weight_decay=cfg.weight_decay)
    model.prepare(opt, paddle.nn.CrossEntropyLoss(), paddle.metric.Accuracy())

    ckpt_dir = ctx.path("checkpoints")
    history = _earlier_history(ctx)
    done = 0
    if ctx.resumed:
        last = sorted(ckpt_dir.glob("epoch_*.pdparams"))
        if last:
            prefix = str(last[-1]).removesuffix(".pdparams")
            model.load(prefix)
            done = int(prefix.rsplit("_", 1)[1])
            history = [h for h in history if h.get("epoch", 0) <= done]
            ctx.log(f"resumed from {last[-1].name} (epoch {done})")
    # no manual scheduler stepping here: the .pdopt that model.load read holds the scheduler's
    # state (LR_Scheduler.last_epoch), so the schedule already continues where it left off
    rec = _paddle_recorder(ctx, model, ckpt_dir, history, done)
    remaining = cfg.epochs - done
    if remaining > 0:
        with ctx.progress(f"train {remaining} epoch(s)", total=remaining * steps) as advance:
            rec.advance = advance
            loader = paddle.io.DataLoader(train_ds, batch_sampler=EpochBatches(train_ds, cfg.batch_size, done))
            model.fit(loader, val_ds, epochs=remaining, batch_size=cfg.batch_size, verbose=0, callbacks=[rec],
                      num_workers=0)  # fmt: skip
    _finish(ctx, history)
    shutil.rmtree(ckpt_dir / "__pycache__", ignore_errors=True)
    net.eval()
    return net


def _paddle_data_classes(ctx):
    """The Paddle dataset of a split (seeded flips) and the batch sampler (seeded shuffles), both
    keyed by (seed, epoch) so that a resumed run sees the same batches."""
    import paddle

    class Images(paddle.io.Dataset):
        def __init__(self, split, augment):
            super().__init__()
            self.x, self.y, self.augment = split.normalized(), split.labels, augment
            self.epoch = 0

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            x = self.x[i]
            # the flip of image i in epoch e depends on (seed, e, i) only, not on the order in
            # which the loader's prefetch thread asks: a resumed run sees the same batches
            if self.augment and np.random.default_rng([ctx.seed, self.epoch, i]).random() < 0.5:
                x = x[:, :, ::-1].copy()
            return x, np.array([self.y[i]], dtype=np.int64)

    class EpochBatches(paddle.io.Sampler):
        """Shuffled batches from a permutation seeded by (seed, epoch): fit's own shuffling draws
        from numpy's global RNG, which a resumed run cannot put back where it was."""

        def __init__(self, dataset, batch_size, epochs_done):
            super().__init__(dataset)
            self.dataset, self.batch_size, self.epoch = dataset, batch_size, epochs_done

        def __iter__(self):
            self.epoch += 1
            self.dataset.epoch = self.epoch
            perm = np.random.default_rng([ctx.seed, self.epoch]).permutation(len(self.dataset))
            for start in range(0, len(perm), self.batch_size):
                yield perm[start : start + self.batch_size].tolist()

        def __len__(self):
            return math.ceil(len(self.dataset) / self.batch_size)

    return Images, EpochBatches


def _paddle_recorder(ctx, model, ckpt_dir, history: list, done: int):
    """The fit callback: per-batch losses, and per epoch a history row, an atomic checkpoint
    (.pdopt then .pdparams), then the logged metrics."""
    import paddle

    class Recorder(paddle.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epoch = done
            self.advance = None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch += 1
            self.train_logs = {}
            self.batch_losses = []

        def on_train_batch_end(self, step, logs=None):
            # fit's epoch logs hold the last batch's loss only: keep every batch's for the mean
            loss = (logs or {}).get("loss")
            if loss is not None:
                self.batch_losses.append(float(np.mean(loss)))
            if self.advance:
                self.advance(1)

        def on_epoch_end(self, epoch, logs=None):
            self.train_logs = dict(logs or {})

        def on_eval_end(self, logs=None):
            tl, vl = self.train_logs, dict(logs or {})
            row = {
                "epoch": self.epoch,
                "train_loss": float(np.mean(self.batch_losses or tl.get("loss", [float("nan")]))),
                "train_acc": float(tl.get("acc", float("nan"))),
                "val_loss": float(np.mean(vl.get("loss", [float("nan")]))),
                "val_acc": float(vl.get("acc", float("nan"))),
            }
            history.append(row)
            prefix = ckpt_dir / f"epoch_{self.epoch:04d}"
            tmp = ckpt_dir / f".tmp_epoch_{self.epoch:04d}"
            model.save(str(tmp))  # .pdparams + .pdopt, renamed once both are complete
            for ext in (".pdopt", ".pdparams"):  # .pdparams last: resume looks for it
                os.replace(f"{tmp}{ext}", f"{prefix}{ext}")
            ctx.add_artifact(f"{prefix}.pdparams", kind="checkpoint", epoch=self.epoch)
            # logged after the checkpoint: a logged epoch is always one a resume can start after
            ctx.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=self.epoch)

    return Recorder()


# --- PyTorch ------------------------------------------------------------------------------------
def _torch(ctx, data, net):
    import torch
    import torch.nn.functional as F

    cfg = ctx.config.train
    dev = "cuda" if ctx.device == "cuda" else "cpu"
    xtr, ytr = torch.from_numpy(data.train.normalized()), torch.from_numpy(data.train.labels)
    xva, yva = torch.from_numpy(data.valid.normalized()), torch.from_numpy(data.valid.labels)
    steps = math.ceil(len(ytr) / cfg.batch_size)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps)
    gen = torch.Generator().manual_seed(ctx.seed)
    ckpt_dir = ctx.path("checkpoints")
    history = _earlier_history(ctx)
    done = 0
    if ctx.resumed:
        last = sorted(ckpt_dir.glob("epoch_*.pt"))
        if last:
            state = torch.load(last[-1], weights_only=True)
            net.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            gen.set_state(state["generator"])
            done = int(state["epoch"])
            history = [h for h in history if h.get("epoch", 0) <= done]
            ctx.log(f"resumed from {last[-1].name} (epoch {done})")

    def evaluate():
        net.eval()
        with torch.no_grad():
            logits = torch.cat([net(xva[i : i + 64].to(dev)).cpu() for i in range(0, len(yva), 64)])
        net.train()
        return float(F.cross_entropy(logits, yva)), float((logits.argmax(1) == yva).float().mean())

    with ctx.progress(f"train {cfg.epochs - done} epoch(s)", total=max(cfg.epochs - done, 0) * steps) as advance:
        for epoch in range(done + 1, cfg.epochs + 1):
            net.train()
            perm = torch.randperm(len(ytr), generator=gen)
            tot_loss, correct = 0.0, 0
            for s in range(steps):
                idx = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
                x, y = xtr[idx].to(dev), ytr[idx].to(dev)
                flip = torch.rand(len(idx), generator=gen) < 0.5
                x[flip] = x[flip].flip(-1)
                logits = net(x)
                loss = F.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                tot_loss += float(loss) * len(idx)
                correct += int((logits.argmax(1) == y).sum())
                advance(1)
            vl, va = evaluate()
            row = {
                "epoch": epoch,
                "train_loss": tot_loss / len(ytr),
                "train_acc": correct / len(ytr),
                "val_loss": vl,
                "val_acc": va,
            }
            history.append(row)
            state = {"model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                     "generator": gen.get_state(), "epoch": epoch}  # fmt: skip
            with ctx.atomic_path("checkpoints", f"epoch_{epoch:04d}.pt") as tmp:
                torch.save(state, tmp)
            ctx.add_artifact(ctx.path("checkpoints", f"epoch_{epoch:04d}.pt"), kind="checkpoint", epoch=epoch)
            ctx.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
    _finish(ctx, history)
    net.eval()
    return net
