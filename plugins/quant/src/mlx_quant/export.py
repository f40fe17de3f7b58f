"""Export of the bitsandbytes path: the quantized model folder (``save_pretrained``), the LoRA
adapters, a reload that needs no quantization arguments (checked against the in-memory model),
and a report: memory footprint, Linear-weight bytes, perplexity and latency, fp vs quantized."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import torch

from mlx_core import StageFailed, atomic_write_json

from .model import LMBundle, linear_weight_bytes, load_model, model_class, portable_quantization_config, quiet
from .train import perplexity


@torch.no_grad()
def latency_ms(model: Any, batch: torch.Tensor, repeats: int) -> float:
    """Best wall time of one forward pass over ``batch`` over ``repeats`` passes (after one warm-up
    pass): on a shared machine the minimum is the figure least disturbed by other jobs."""
    device = next(p.device for p in model.parameters() if p.device.type != "meta")
    batch = batch.to(device)
    model(input_ids=batch) if not getattr(model.config, "is_encoder_decoder", False) else model(
        input_ids=batch, labels=batch
    )
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        if getattr(model.config, "is_encoder_decoder", False):
            model(input_ids=batch, labels=batch)
        else:
            model(input_ids=batch)
        times.append((time.perf_counter() - t0) * 1000)
    return min(times)


@torch.no_grad()
def logits(model: Any, batch: torch.Tensor) -> torch.Tensor:
    device = next(p.device for p in model.parameters() if p.device.type != "meta")
    batch = batch.to(device)
    if getattr(model.config, "is_encoder_decoder", False):
        return model(input_ids=batch, labels=batch).logits.float().cpu()
    return model(input_ids=batch).logits.float().cpu()


def plot_report(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["models"]
    names = list(rows)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    panels = [("memory_footprint_mb", "memory footprint (MB)"), ("perplexity", "perplexity (eval text)"),
              ("latency_ms", "CPU latency (ms / batch)" if report["device"] == "cpu" else "latency (ms / batch)")]  # fmt: skip
    colors = ["#4C72B0", "#DD8452", "#55A868", "#C44E52"]
    for ax, (key, title) in zip(axes, panels, strict=True):
        vals = [rows[n].get(key) for n in names]
        ax.bar(range(len(names)), [v or 0.0 for v in vals], color=colors[: len(names)])
        ax.set_xticks(range(len(names)), names, rotation=15, fontsize=8)
        ax.set_title(title, fontsize=10)
        for i, v in enumerate(vals):  # no figure (the adapters' own footprint/latency): said, not drawn as 0
            ax.text(i, v or 0.0, "n/a" if v is None else f"{v:.3g}", ha="center", va="bottom", fontsize=8)
    fig.suptitle(f"{report['model_class']} ({report['precision']}); trained={report['trained']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def _reload_diff(ctx, base, out_dir, adapter_dir, batch, reference) -> float:
    """Reload the exported folder (and adapters) with no quantization arguments, as a user would:
    the saved config.json carries them. Returns the max |logit difference| to ``reference``."""
    with ctx.progress("reload the exported model", total=None):
        cls = model_class(base.config)
        kwargs: dict[str, Any] = {"device_map": {"": 0}} if ctx.device == "cuda" else {}
        kwargs["trust_remote_code"] = ctx.config.model.trust_remote_code
        reloaded = cls.from_pretrained(out_dir, **kwargs).eval()
        if adapter_dir is not None:
            from peft import PeftModel

            reloaded = PeftModel.from_pretrained(reloaded, adapter_dir).eval()
        diff = float((logits(reloaded, batch) - reference).abs().max())
    del reloaded
    return diff


def _measure_unquantized(ctx, bundle: LMBundle, ev, batch) -> tuple[int, dict[str, int], float, float]:
    """The unquantized reference from the same source folder: (footprint bytes, linear weight
    bytes by layer, perplexity, latency ms)."""
    with ctx.progress("evaluate the unquantized model", total=None):
        fp = load_model(bundle.folder, ctx.config.model, ctx.device, quantized=False)
        foot_fp = int(fp.get_memory_footprint())
        lin_fp = linear_weight_bytes(fp)
        ppl_fp = perplexity(fp, ev)
        lat_fp = latency_ms(fp, batch, ctx.config.export.latency_repeats)
    del fp
    return foot_fp, lin_fp, ppl_fp, lat_fp


def _add_artifacts(ctx, out_dir, adapter_dir, precision: str, diff: float, report_path) -> None:
    ctx.add_artifact(out_dir / "config.json", kind="model", format="transformers", precision=precision,
                     folder=str(out_dir.relative_to(ctx.run_dir)), reload_max_abs_diff=diff)  # fmt: skip
    for f in sorted(out_dir.glob("*.safetensors")):
        ctx.add_artifact(f, kind="model-weights", precision=precision)
    # every other file of the folders too (tokenizer, generation config, adapter config): what
    # `mlx serve` loads must be recorded, so that the core can check its sha256 first
    for f in sorted(
        p for p in out_dir.iterdir() if p.is_file() and p.name != "config.json" and p.suffix != ".safetensors"
    ):
        ctx.add_artifact(f, kind="model-file")
    if adapter_dir is not None:
        for f in sorted(p for p in adapter_dir.iterdir() if p.is_file()):
            ctx.add_artifact(f, kind="adapter", format="peft")
    ctx.add_artifact(report_path, kind="report")
    ctx.add_artifact(ctx.path("export", "report.png"), kind="chart")


def export(ctx, data, bundle: LMBundle) -> dict[str, Any]:
    cfg, mcfg = ctx.config.export, ctx.config.model
    quiet()
    model = bundle.model
    is_peft = hasattr(model, "peft_config")
    ev = bundle.eval_windows
    batch = ev[: min(4, len(ev))]
    precision = (
        "int8" if mcfg.load_in_8bit else f"4-bit {mcfg.bnb_4bit_quant_type}" if mcfg.load_in_4bit else mcfg.torch_dtype
    )

    # the quantized model as it is in memory (with adapters, when trained)
    with ctx.progress("evaluate the quantized model", total=None):
        reference = logits(model, batch)
        ppl_q_lora = perplexity(model, ev) if is_peft else None
        if is_peft:
            with model.disable_adapter():
                ppl_q = perplexity(model, ev)
        else:
            ppl_q = perplexity(model, ev)
        lat_q = latency_ms(model, batch, cfg.latency_repeats)
    # each folder replaces the previous export's only once it is complete
    out_dir = ctx.path("export", "model")
    adapter_dir = ctx.path("export", "adapter")
    if is_peft:
        with ctx.atomic_dir("export", "adapter") as tmp:
            model.save_pretrained(tmp)  # PeftModel.save_pretrained writes only the adapters
    elif adapter_dir.exists():  # a previous export's adapter does not belong to this model
        shutil.rmtree(adapter_dir)
    base = model.unload() if is_peft else model  # LoRA layers removed (not merged): the frozen base
    foot_q = int(base.get_memory_footprint())
    lin_q = linear_weight_bytes(base)

    portable_quantization_config(base)
    with ctx.atomic_dir("export", "model") as tmp:
        base.save_pretrained(tmp)
        bundle.tokenizer.save_pretrained(tmp)

    diff = _reload_diff(ctx, base, out_dir, adapter_dir if is_peft else None, batch, reference)
    allowed = cfg.max_abs_diff_4bit if mcfg.load_in_4bit else cfg.max_abs_diff

    foot_fp, lin_fp, ppl_fp, lat_fp = _measure_unquantized(ctx, bundle, ev, batch)
    quantized_names = [n for n, b in lin_q.items() if n in lin_fp and b < lin_fp[n]]
    lin_ratio = (
        (sum(lin_q[n] for n in quantized_names) / sum(lin_fp[n] for n in quantized_names)) if quantized_names else 1.0
    )

    trained = ctx.manifest.data.get("records", {}).get("trained", None)
    models = {
        f"{mcfg.torch_dtype}": {"memory_footprint_mb": foot_fp / 1e6, "perplexity": ppl_fp, "latency_ms": lat_fp},
        precision: {"memory_footprint_mb": foot_q / 1e6, "perplexity": ppl_q, "latency_ms": lat_q},
    }
    if ppl_q_lora is not None:
        models[f"{precision} + LoRA"] = {"memory_footprint_mb": None, "perplexity": ppl_q_lora, "latency_ms": None}
    report = {
        "model_class": type(base).__name__, "source_folder": str(bundle.folder), "precision": precision,
        "device": ctx.device, "trained": trained, "quantization": bundle.quantization,
        "memory_footprint_bytes": {"before": foot_fp, "after": foot_q, "ratio": foot_q / foot_fp},
        "linear_weight_bytes": {"before": sum(lin_fp[n] for n in quantized_names),
                                "after": sum(lin_q[n] for n in quantized_names), "ratio": lin_ratio,
                                "quantized_layers": len(quantized_names), "linear_layers": len(lin_q)},
        "perplexity": {"before": ppl_fp, "after": ppl_q, "after_lora": ppl_q_lora, "eval_windows": int(len(ev)),
                       "seq_len": int(ev.shape[1])},
        "latency_ms": {"before": lat_fp, "after": lat_q, "batch": list(batch.shape), "repeats": cfg.latency_repeats},
        "reload": {"max_abs_logit_diff": diff, "allowed": allowed, "needs_quantization_args": False},
        "models": models,
    }  # fmt: skip
    from .gates import judge

    # the gate judges quantization alone: the base without adapters against the unquantized model
    verdict = judge("perplexity", ppl_fp, ppl_q, ctx.config.gate, "gate.")
    report["gate"] = verdict
    report_path = atomic_write_json(ctx.path("export", "report.json"), report)
    with ctx.atomic_path("export", "report.png") as tmp_png:
        plot_report(report, tmp_png)
    _add_artifacts(ctx, out_dir, adapter_dir if is_peft else None, precision, diff, report_path)
    metrics = {"footprint_before_mb": foot_fp / 1e6, "footprint_after_mb": foot_q / 1e6, "footprint_ratio": foot_q / foot_fp,
               "linear_weight_ratio": lin_ratio, "perplexity_before": ppl_fp, "perplexity_after": ppl_q,
               "latency_before_ms": lat_fp, "latency_after_ms": lat_q, "reload_max_abs_diff": diff}  # fmt: skip
    if ppl_q_lora is not None:
        metrics["perplexity_after_lora"] = ppl_q_lora
    ctx.log_metrics(metrics)
    from .gates import enforce

    enforce(ctx, {precision: verdict})
    if not diff <= allowed:
        raise StageFailed(
            f"the reloaded model differs from the in-memory one: max |logit diff| {diff:.3g} > {allowed:g}"
        )
    return {"transformers": str(out_dir), "adapter": str(adapter_dir) if is_peft else None, "report": str(report_path)}
