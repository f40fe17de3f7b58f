"""Train stage: ``Seq2SeqTrainer`` with SacreBLEU each epoch, resumable from its checkpoints.

transformers 5 spellings: ``eval_strategy`` (not ``evaluation_strategy``), ``processing_class``
(not ``tokenizer``), ``warmup_steps`` as a float ratio (``warmup_ratio`` is gone).
The untrained model's held-out BLEU is measured first so the run states both numbers.
"""

from __future__ import annotations

import time
from typing import Any

from mlx_core import StageFailed
from mlx_core.faults import kill_point

from . import offline
from .files import quiet_transformers

offline()  # before transformers or datasets is first imported: nothing may be downloaded

PRETRAINED_LR = 2e-5
SCRATCH_LR = 3e-3


def bleu_metrics(tokenizer):
    """``compute_metrics`` for ``predict_with_generate``: SacreBLEU and mean generated length."""
    import numpy as np
    import sacrebleu

    pad = tokenizer.pad_token_id

    def compute(eval_preds) -> dict[str, float]:
        preds, labels = eval_preds
        if isinstance(preds, tuple):
            preds = preds[0]
        preds = np.where(preds != -100, preds, pad)
        labels = np.where(labels != -100, labels, pad)
        hyps = [t.strip() for t in tokenizer.batch_decode(preds, skip_special_tokens=True)]
        refs = [t.strip() for t in tokenizer.batch_decode(labels, skip_special_tokens=True)]
        bleu = sacrebleu.corpus_bleu(hyps, [refs]).score
        gen_len = float(np.mean([np.count_nonzero(p != pad) for p in preds]))
        return {"bleu": round(bleu, 4), "gen_len": round(gen_len, 4)}

    return compute


def make_callback(ctx, total_epochs: float):
    from transformers import TrainerCallback

    class MlxCallback(TrainerCallback):
        """Epoch progress, per-epoch metrics into the manifest, and pure training time (no eval)."""

        def __init__(self):
            self.train_seconds = 0.0
            self.epoch_start: float | None = None
            self.last_loss: float | None = None
            self.advance = None
            self.pending: tuple[dict[str, float], int] | None = None

        def on_epoch_begin(self, args, state, control, **kw):
            self.epoch_start = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kw):
            if self.epoch_start is not None:
                self.train_seconds += time.perf_counter() - self.epoch_start
                self.epoch_start = None
            if self.advance:
                self.advance(1)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.last_loss = float(logs["loss"])

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            row = epoch_row(metrics, self.last_loss)
            if row is not None:
                self.pending = (row, int(round(state.epoch or 0)))

        def on_save(self, args, state, control, **kw):
            # The Trainer evaluates, then checkpoints: the epoch's row goes into run.json only once its
            # checkpoint is complete, so a run killed at any moment has a checkpoint for every logged
            # epoch and a --from resume never logs an epoch twice.
            if self.pending is not None:
                row, step = self.pending
                self.pending = None
                kill_point(f"translation:before_log:{step}")  # test-only (mlx_core.faults)
                # resumed with another number of processes, the Trainer redoes part of an epoch
                # (its step count per epoch changed): that epoch keeps the row logged first
                log_once(ctx, row, step)

    return MlxCallback()


def log_once(ctx, row: dict[str, float], step: int) -> None:
    if step not in {r.get("step") for r in ctx.manifest.stage("train").get("history", [])}:
        ctx.log_metrics(row, step=step)


def epoch_row(metrics: dict[str, Any] | None, last_loss: float | None) -> dict[str, float] | None:
    """The run.json row of an end-of-epoch evaluation (None for other evaluations)."""
    if not metrics or "eval_bleu" not in metrics:
        return None
    row = {k: float(v) for k, v in metrics.items() if k in ("eval_bleu", "eval_loss", "eval_gen_len")}
    if last_loss is not None:
        row["train_loss"] = last_loss
    return row


def plot_curves(ctx, history: list[dict[str, Any]], untrained: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [h for h in history if "eval_bleu" in h]
    if not rows:
        return
    fig, ax1 = plt.subplots(figsize=(6, 3.5))
    epochs = [r["epoch"] for r in rows]
    ax1.plot(epochs, [r["eval_bleu"] for r in rows], "o-", color="tab:blue", label="held-out BLEU")
    if untrained is not None:
        ax1.axhline(untrained, color="tab:gray", ls="--", label=f"untrained BLEU {untrained:.2f}")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("SacreBLEU")
    ax2 = ax1.twinx()
    losses = [(h["epoch"], h["loss"]) for h in history if "loss" in h]
    if losses:
        ax2.plot(*zip(*losses, strict=True), "s--", color="tab:red", label="train loss")
        ax2.set_ylabel("train loss")
    fig.legend(loc="upper center", ncol=3, fontsize=8)
    fig.tight_layout()
    path = ctx.path("train", "curves.png")
    with ctx.atomic_path("train", "curves.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    ctx.add_artifact(path, kind="plot")


def metrics_params(model) -> str:
    n = sum(p.numel() for p in model.parameters())
    return f"{n / 1e6:.2f}M-parameter" if n >= 1e5 else f"{n}-parameter"


def last_complete_checkpoint(ckpt_dir) -> str | None:
    """The newest ``checkpoint-N`` whose save finished.

    ``Trainer._save_checkpoint`` writes ``trainer_state.json`` after the weights, optimizer,
    scheduler and RNG states, so a folder without it was cut off mid-save (e.g. SIGKILL); such
    folders are removed so the resumed run can save that step again cleanly.
    """
    import shutil
    from pathlib import Path

    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return None
    found = []
    for d in ckpt_dir.glob("checkpoint-*"):
        suffix = d.name.split("-", 1)[1]
        if d.is_dir() and suffix.isdigit():
            found.append((int(suffix), d))
    best = None
    for _step, d in sorted(found, reverse=True):
        if (d / "trainer_state.json").is_file() and (d / "model.safetensors").is_file():
            best = d
            break
        shutil.rmtree(d, ignore_errors=True)
    return str(best) if best is not None else None


def make_trainer(ctx, data: dict[str, Any], model, lr: float, ckpt_dir):
    """The Seq2SeqTrainer of this run (epoch-wise eval/save/log, BLEU metrics) and its MlxCallback."""
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments
    from transformers.trainer_callback import PrinterCallback

    cfg = ctx.config.train
    tokenizer, tokenized = data["tokenizer"], data["tokenized"]
    test = tokenized["test"]
    eval_ds = test if not cfg.eval_samples or cfg.eval_samples >= len(test) else test.select(range(cfg.eval_samples))
    fp16 = ctx.device == "cuda" and cfg.fp16
    args = Seq2SeqTrainingArguments(
        output_dir=str(ckpt_dir),
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        learning_rate=lr,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=max(cfg.batch_size, 64),
        weight_decay=cfg.weight_decay,
        save_total_limit=cfg.save_total_limit,
        num_train_epochs=cfg.epochs,
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type="linear",
        predict_with_generate=True,
        generation_max_length=cfg.generation_max_length,
        generation_num_beams=1,
        fp16=fp16,
        use_cpu=ctx.device == "cpu",
        report_to="none",
        seed=ctx.seed,
        data_seed=ctx.seed,
        disable_tqdm=True,
        dataloader_num_workers=0,
        # launched (mlx run --nproc N): DDP from torchrun's environment; a dead peer fails a
        # collective after the launcher's timeout instead of 30 minutes
        ddp_timeout=int(ctx.dist.timeout_s),
        ddp_find_unused_parameters=False,
    )
    collator = DataCollatorForSeq2Seq(
        tokenizer, model=model, label_pad_token_id=-100, pad_to_multiple_of=8 if fp16 else None
    )
    callback = make_callback(ctx, cfg.epochs)
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=tokenized["train"],
        eval_dataset=eval_ds,
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=bleu_metrics(tokenizer),
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)  # metrics go through ctx.log_metrics, not raw dicts on stdout
    return trainer, callback


def log_checkpointed_epochs(ctx, checkpoint: str) -> None:
    """Log the epoch rows a killed run had checkpointed but not yet logged: the Trainer writes a
    checkpoint before ``on_save`` logs its epoch, so a kill between the two would otherwise leave
    that epoch out of run.json's history for good (the resumed run starts after it). The rows come
    from the checkpoint's own ``trainer_state.json``, so they are the values that run measured."""
    import json
    from pathlib import Path

    logged = {r.get("step") for r in ctx.manifest.stage("train").get("history", [])}
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    last_loss = None
    for entry in state.get("log_history", []):
        if "loss" in entry:
            last_loss = float(entry["loss"])
        row = epoch_row(entry, last_loss)
        step = int(round(entry.get("epoch") or 0))
        if row is not None and step not in logged:
            ctx.log_metrics(row, step=step)
            logged.add(step)


def forget_eval_preparation(trainer) -> None:
    """Let ``trainer.train()`` wrap the model in DDP after an ``evaluate()``.

    ``evaluate()`` before any training prepares the bare model with accelerate in evaluation
    mode (no DDP) and marks it prepared; ``train()``'s ``accelerator.prepare`` then returns it
    as it is, and each rank of a launched run trains its own copy without gradient sync (found
    by this plugin's equal-weights test; transformers 5.24 / accelerate 1.15). One process: no-op."""
    model = trainer.model
    if trainer.args.world_size > 1 and getattr(model, "_is_accelerate_prepared", False):
        model._is_accelerate_prepared = False
        trainer.accelerator._models = [m for m in trainer.accelerator._models if m is not model]
        trainer.model_wrapped = model


def starting_point(ctx, trainer, ckpt_dir, test) -> tuple[str | None, float]:
    """(checkpoint to resume from or None, untrained BLEU): an earlier invocation's when this run
    resumes, else measured now and logged."""
    last = last_complete_checkpoint(ckpt_dir) if ctx.resumed else None
    earlier = ctx.manifest.data.get("metrics", {})
    if last is not None and "bleu_untrained" in earlier:
        untrained = float(earlier["bleu_untrained"])
        ctx.log(f"resuming from {last}")
        ctx.record("resumed_from", last)
        log_checkpointed_epochs(ctx, last)
    else:
        last = None
        with ctx.progress("untrained BLEU", total=None):
            base = trainer.evaluate(eval_dataset=test, metric_key_prefix="untrained")
        untrained = float(base["untrained_bleu"])
        ctx.log_metrics({"bleu_untrained": untrained, "gen_len_untrained": float(base["untrained_gen_len"])})
        forget_eval_preparation(trainer)

    return last, untrained


def rank_rows(ctx, model, examples: int, seconds: float) -> list[dict[str, Any]]:
    """Each rank's training examples/s and a sha256 of its weights, gathered on every rank of a
    launched run (DDP keeps the replicas equal: equal digests show it); [] for one process."""
    import hashlib

    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return []
    digest = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    row = {"rank": ctx.dist.rank, "samples_per_s": examples / seconds if seconds else None,
           "weights_sha256": digest.hexdigest()}  # fmt: skip
    rows: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(rows, row)
    return rows


def run(ctx, data: dict[str, Any], model):
    import torch
    from transformers.trainer_utils import get_last_checkpoint

    quiet_transformers()
    cfg = ctx.config.train
    if ctx.device == "cpu" and cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    pretrained = bool(ctx.config.model.path)
    lr = cfg.learning_rate or (PRETRAINED_LR if pretrained else SCRATCH_LR)
    tokenized, test = data["tokenized"], data["tokenized"]["test"]
    ckpt_dir = ctx.path("train", "checkpoints")
    trainer, callback = make_trainer(ctx, data, model, lr, ckpt_dir)
    last, untrained = starting_point(ctx, trainer, ckpt_dir, test)
    steps_before = 0
    if last is not None:
        import json
        from pathlib import Path

        steps_before = json.loads((Path(last) / "trainer_state.json").read_text()).get("global_step", 0)
    total_epochs = int(-(-cfg.epochs // 1))
    with ctx.progress("training (epochs)", total=total_epochs) as advance:
        callback.advance = advance
        try:
            result = trainer.train(resume_from_checkpoint=last)
        except KeyboardInterrupt:  # Ctrl-C / SIGTERM: say where --from will pick up
            saved = last_complete_checkpoint(ckpt_dir)
            ctx.note(
                f"training interrupted; `mlx run translation {ctx.target} --from {ctx.run_dir}` resumes from "
                + (f"{saved}" if saved else "the start (no epoch checkpoint was complete)")
            )
            raise
    model = trainer.model
    examples = (trainer.state.global_step - steps_before) * cfg.batch_size  # this rank's
    final = trainer.evaluate(eval_dataset=test, metric_key_prefix="test")
    ranks = rank_rows(ctx, model, examples, callback.train_seconds)  # a collective: every rank
    if not ctx.dist.is_main:  # rank 0 records, plots and registers the checkpoint
        return model
    if ranks:
        ctx.record_ranks(ranks)
    examples *= ctx.dist.world_size
    bleu = float(final["test_bleu"])
    epoch_losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    metrics = {
        "bleu": bleu,
        "bleu_untrained": untrained,
        "gen_len": float(final["test_gen_len"]),
        "test_loss": float(final["test_loss"]),
        # the last epoch's mean training loss: unlike TrainOutput.training_loss (which only sums the
        # steps run since a resume) it is the same for a resumed and an uninterrupted run
        "train_loss": float(epoch_losses[-1]) if epoch_losses else float(result.training_loss),
        "train_seconds": round(callback.train_seconds, 3),
        "learning_rate": lr,
    }
    if callback.train_seconds > 0 and examples > 0:
        metrics["train_examples_per_s"] = round(
            min(examples, len(tokenized["train"]) * cfg.epochs) / callback.train_seconds, 2
        )
    ctx.log_metrics(metrics)
    ctx.record("trained", True)
    n_test = len(test)
    if pretrained:
        ctx.note(f"held-out BLEU {bleu:.2f} after fine-tuning (untrained: {untrained:.2f}) on {n_test} test sentences")
    else:
        ctx.note(
            f"held-out BLEU {bleu:.2f} after training from scratch (untrained random init: {untrained:.2f}) on {n_test} test "
            f"sentences; a {metrics_params(model)} T5 trained for {cfg.epochs:g} epochs on this run's corpus only"
            + (
                " (the generated grammar corpus: the figure says how well it learnt that grammar, not general French)"
                if not ctx.config.data.path
                else ""
            )
        )
    plot_curves(ctx, trainer.state.log_history, untrained)
    final_ckpt = get_last_checkpoint(str(ckpt_dir))
    if final_ckpt:
        for f in ("model.safetensors", "trainer_state.json"):
            p = ckpt_dir / final_ckpt / f
            if p.exists():
                ctx.add_artifact(p, kind="checkpoint")
    if bleu != bleu:  # NaN: the model diverged
        raise StageFailed(f"held-out BLEU is NaN after training (lr={lr}); lower train.learning_rate")
    return model
