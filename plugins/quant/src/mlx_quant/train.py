"""Optional LoRA fine-tuning (peft) of the frozen 8-bit / 4-bit model, on the shared engine
(mlx_torch.fit, on pytorch-ignite). This module holds only quant's domain: the LoRA config, the
language-model loss on the token windows and the evaluation (perplexity on the held-out windows).
Loop, DDP, checkpoints (after each epoch, adapters only), resume, early stopping and precision
are the engine's (docs/engine.md).

The quantized weights themselves are not trained; only the adapters are (the engine's optimizer
gets the parameters with ``requires_grad``: the adapters).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import Dataset

from .model import LMBundle, check_module_names, quiet


def lm_loss(model: Any, batch: torch.Tensor) -> torch.Tensor:
    return model(input_ids=batch, labels=batch).loss


@torch.no_grad()
def perplexity(model: Any, windows: torch.Tensor, batch_size: int = 4) -> float:
    """exp(mean token cross-entropy) over the evaluation windows (the export's figures)."""
    device = next(p.device for p in model.parameters() if p.device.type != "meta")
    total, n = 0.0, 0
    for i in range(0, len(windows), batch_size):
        b = windows[i : i + batch_size].to(device)
        total += float(lm_loss(model, b)) * len(b)
        n += len(b)
    return math.exp(total / max(n, 1))


class Windows(Dataset):
    """The token windows (n, seq_len) as a dataset of windows: the default collate stacks a batch."""

    def __init__(self, windows: torch.Tensor) -> None:
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.windows[i]


def eval_output(model: Any, batch: torch.Tensor) -> tuple[torch.Tensor]:
    """The batch's mean token cross-entropy, once per window: every window has the same number of
    tokens, so Ignite's ``Average`` of these over the split is its mean token cross-entropy, the
    log of :func:`perplexity` (summed over the ranks by Ignite)."""
    loss = lm_loss(model, batch)
    # (n, 1): Ignite's Average counts the first dimension as examples only when there is a second
    return (loss.detach().reshape(1, 1).expand(len(batch), 1),)


def metrics(device: torch.device) -> dict[str, Any]:
    from ignite.metrics import Average

    return {"loss": Average(output_transform=lambda out: out[0], device=device)}


def summarize(values: Mapping[str, Any]) -> dict[str, float]:
    loss = float(values["loss"].reshape(-1)[0]) if isinstance(values["loss"], torch.Tensor) else float(values["loss"])
    return {"loss": loss, "perplexity": math.exp(loss)}


def keep_4bit_layout_trainable(model: Any) -> None:
    """bitsandbytes 0.50 repacks a Linear4bit weight into an inference-only CPU layout (AVX512-BF16)
    at its first eval-mode forward; a training forward after that fails in autograd (an in-place
    add on the packed output). The engine evaluates before and between epochs, so the repacking is
    switched off for the LoRA run (the canonical 4-bit layout serves both)."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def train(ctx, data, bundle: LMBundle) -> LMBundle:
    cfg = ctx.config.train
    if cfg.epochs == 0:
        ctx.log("[train] train.epochs=0: no LoRA fine-tuning; the quantized model goes to export as loaded")
        ctx.record("lora", None)
        return bundle
    from peft import LoraConfig, get_peft_model

    from mlx_torch.dist import is_main
    from mlx_torch.fit import fit

    quiet()
    names = [n for n, _ in bundle.model.named_modules() if n]
    check_module_names("train.target_modules", list(cfg.target_modules), names)
    torch.manual_seed(ctx.seed)  # the adapters' initialisation: the same on every rank
    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(cfg.target_modules), lora_dropout=0.0,
        task_type="SEQ_2_SEQ_LM" if bundle.kind == "seq2seq" else "CAUSAL_LM",
    )  # fmt: skip
    model = get_peft_model(bundle.model, lora)
    keep_4bit_layout_trainable(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    result = fit(
        ctx, model, Windows(bundle.train_windows), Windows(bundle.eval_windows), cfg=cfg, epochs=cfg.epochs,
        batch_size=cfg.batch_size, optimizer=lambda params: torch.optim.AdamW(params, lr=cfg.lr),
        loss_fn=lm_loss, eval_fn=eval_output, metrics=metrics, summarize=summarize, initial_name="initial",
        trainable_only=True,
    )  # fmt: skip
    bundle.model = result.model
    if not is_main(ctx):
        return bundle
    rows = [r for r in result.history if r["epoch"] >= 1]
    first, last = result.history[0], result.history[-1]
    if result.checkpoint is not None:
        ctx.add_artifact(result.checkpoint, kind="checkpoint", epoch=int(result.checkpoint.stem.split("-")[1]))
    ctx.log_metrics({"val_perplexity": last["val_perplexity"], "epochs": last["epoch"]})
    stopped = f" (early stopping after epoch {result.stopped_early})" if result.stopped_early else ""
    ctx.note(f"LoRA trained {last['epoch']} epochs{stopped}: eval perplexity "
             f"{first['val_perplexity']:.3f} -> {last['val_perplexity']:.3f}")  # fmt: skip
    ctx.record("lora", {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "targets": list(cfg.target_modules),
                        "trainable_parameters": trainable, "epochs": last["epoch"],
                        "first_loss": rows[0]["train_loss"] if rows else None,
                        "last_loss": rows[-1]["train_loss"] if rows else None})  # fmt: skip
    return bundle
