"""Optional LoRA fine-tuning (peft) on top of the frozen 8-bit / 4-bit model.

The quantized weights themselves are not trained; only the adapters are. Adapters and the
optimizer state are checkpointed every ``train.checkpoint_every`` steps; ``--from`` resumes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from mlx_core import ConfigError, DataError

from .model import LMBundle, check_module_names, quiet


def lm_loss(model: Any, batch: torch.Tensor) -> torch.Tensor:
    return model(input_ids=batch, labels=batch).loss


@torch.no_grad()
def perplexity(model: Any, windows: torch.Tensor, batch_size: int = 4) -> float:
    """exp(mean token cross-entropy) over the evaluation windows."""
    device = next(p.device for p in model.parameters() if p.device.type != "meta")
    total, n = 0.0, 0
    for i in range(0, len(windows), batch_size):
        b = windows[i : i + batch_size].to(device)
        total += float(lm_loss(model, b)) * len(b)
        n += len(b)
    return math.exp(total / max(n, 1))


def lora_state(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if "lora_" in k}


def train(ctx, data, bundle: LMBundle) -> LMBundle:
    cfg = ctx.config.train
    if cfg.steps == 0:
        ctx.log("[train] train.steps=0: no LoRA fine-tuning; the quantized model goes to export as loaded")
        ctx.record("lora", None)
        return bundle
    from peft import LoraConfig, get_peft_model

    quiet()
    names = [n for n, _ in bundle.model.named_modules() if n]
    check_module_names("train.target_modules", list(cfg.target_modules), names)
    torch.manual_seed(ctx.seed)
    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(cfg.target_modules), lora_dropout=0.0,
        task_type="SEQ_2_SEQ_LM" if bundle.kind == "seq2seq" else "CAUSAL_LM",
    )  # fmt: skip
    model = get_peft_model(bundle.model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    ckpt: Path = ctx.path("checkpoints", "lora.pt")
    start, history = 0, []
    if ctx.resumed and ckpt.is_file():
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"checkpoint {ckpt} cannot be read ({type(exc).__name__})") from None
        missing = model.load_state_dict(state["adapters"], strict=False)
        if missing.unexpected_keys:
            raise ConfigError(
                f"checkpoint {ckpt} does not fit this LoRA config (unexpected {missing.unexpected_keys[:2]})"
            )
        opt.load_state_dict(state["optimizer"])
        start, history = int(state["step"]), [float(x) for x in state["losses"]]
        ctx.log(f"[train] resuming LoRA from step {start}")
    logged = start
    windows = bundle.train_windows
    device = next(p.device for p in params)
    model.train()
    try:
        with ctx.progress("LoRA steps", total=cfg.steps) as advance:
            advance(start)
            for step in range(start, cfg.steps):
                idx = [(step * cfg.batch_size + i) % len(windows) for i in range(cfg.batch_size)]
                loss = lm_loss(model, windows[idx].to(device))
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                history.append(float(loss.detach()))
                if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                    with ctx.atomic_path("checkpoints", "lora.pt") as tmp:
                        torch.save({"adapters": lora_state(model), "optimizer": opt.state_dict(), "step": step + 1,
                                    "losses": torch.tensor(history)}, tmp)  # fmt: skip
                    # the history gets the steps this checkpoint covers, only once it is saved: a
                    # resumed run never logs a step twice
                    for done in range(logged, step + 1):
                        ctx.log_metrics({"loss": history[done]}, step=done + 1)
                    logged = step + 1
                advance(1)
    except KeyboardInterrupt:
        ctx.note(f"LoRA training interrupted; the last checkpoint is {ckpt}")
        raise
    model.eval()
    ctx.add_artifact(ckpt, kind="checkpoint", step=cfg.steps)
    ctx.record("lora", {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "targets": list(cfg.target_modules),
                        "trainable_parameters": trainable, "steps": cfg.steps,
                        "first_loss": history[0] if history else None, "last_loss": history[-1] if history else None})  # fmt: skip
    bundle.model = model
    return bundle
