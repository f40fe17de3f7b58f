"""Train stage: Paddle's high-level ``Model.prepare/fit`` with Accuracy, or the torch RedNet on
the shared engine (mlx_torch.fit, pytorch-ignite: DDP under ``--nproc N``, early stopping,
precision; docs/engine.md).

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
    if all("train_acc" in h for h in history):  # Paddle's fit reports it; the torch engine evaluates val only
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


# --- PyTorch: on the shared engine (mlx_torch.fit, pytorch-ignite; docs/engine.md) -------------
def _torch(ctx, data, net):
    """The torch RedNet's domain only: the flip-augmented dataset, the loss, accuracy and loss as
    Ignite metrics. Loop, DDP (``--nproc N``), checkpoints (``checkpoints/epoch-NNN.pt``), resume,
    early stopping, precision and the cosine schedule are the engine's."""
    import torch
    import torch.nn.functional as F
    from ignite.metrics import Accuracy, Loss

    from mlx_torch.dist import is_main
    from mlx_torch.fit import fit

    cfg = ctx.config.train
    torch.manual_seed(ctx.seed)
    train_set, val_set = _images(ctx, data.train, augment=True), _images(ctx, data.valid, augment=False)
    result = fit(
        ctx, net, train_set, val_set, cfg=cfg, epochs=cfg.epochs, batch_size=cfg.batch_size,
        optimizer=lambda params: torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay),
        loss_fn=lambda model, batch: F.cross_entropy(model(batch[0]), batch[1]),
        eval_fn=lambda model, batch: (model(batch[0]), batch[1]),
        metrics=lambda device: {"acc": Accuracy(device=device), "loss": Loss(F.cross_entropy, device=device)},
        summarize=lambda values: {"acc": float(values["acc"]), "loss": float(values["loss"])},
        on_epoch_start=lambda epoch: setattr(train_set, "epoch", epoch),
        initial_name="initial" if ctx.config.model.weights else "untrained",
    )  # fmt: skip
    if is_main(ctx):
        last = result.history[-1]
        ctx.log_metrics({"val_acc": last["val_acc"], "val_loss": last["val_loss"], "epochs": last["epoch"]})
        _finish(ctx, [h for h in result.history if h["epoch"] > 0])
        if result.checkpoint is not None:
            ctx.add_artifact(result.checkpoint, kind="checkpoint", epoch=int(result.checkpoint.stem.split("-")[1]))
    return result.model


def _images(ctx, split, augment: bool):
    """A split as a torch Dataset; the flip of image i in epoch e depends on (seed, e, i) only, so
    every rank and a resumed run see the same augmentation whatever the sampler's order."""
    import torch

    class Images(torch.utils.data.Dataset):
        def __init__(self):
            self.x, self.y, self.epoch = split.normalized(), split.labels, 0

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            x = self.x[i]
            if augment and np.random.default_rng([ctx.seed, self.epoch, i]).random() < 0.5:
                x = x[:, :, ::-1].copy()
            return torch.from_numpy(x), int(self.y[i])

    return Images()
