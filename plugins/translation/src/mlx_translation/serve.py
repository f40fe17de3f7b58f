"""The translation predictor: what ``mlx serve`` serves and ``mlx predict`` runs (stage table ``serve``).

Sentences in, translations out, from the run's exported artifact loaded by its own runtime: the
``save_pretrained`` folder through ``AutoModelForSeq2SeqLM`` (backend ``eager``) or the
``torch.export`` programs (backend ``exported``), never the training code. Every file loaded is
checked against the sha256 the run recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from mlx_core import ConfigError, Predictor, Request, Response, RunContext, RunError

from .export import HF_DIR, HF_FILES

BACKENDS = ("eager", "exported")


class TranslateRequest(Request):
    sentences: list[Annotated[str, Field(min_length=1)]] = Field(
        min_length=1, description="sentences in the source language, one translation each"
    )


class TranslateResponse(Response):
    translations: list[str] = Field(description="one translation per sentence, in order")
    backend: str = Field(description="eager (save_pretrained + generate) or exported (torch.export programs)")


def check(ctx: RunContext, backend: str) -> tuple[Path, Path]:
    """(save_pretrained folder, torch.export folder) of the run, or one line saying what is missing."""
    cfg = ctx.config.predict
    folder = ctx.run_dir / Path(*HF_DIR)
    if backend not in BACKENDS:
        raise RunError(f"translation serves the backends {', '.join(BACKENDS)}; there is no {backend!r}")
    if not (folder / "config.json").exists():
        raise RunError(f"{ctx.run_dir} has no exported model in {folder}; run `mlx run translation export` first")
    exp_dir = ctx.run_dir / "export" / "torch_export"
    if backend == "exported":
        if cfg.do_sample:
            raise ConfigError(
                "predict.do_sample=true needs predict.backend=eager; the exported backend does greedy and beam search"
            )
        if not exp_dir.is_dir():
            raise RunError(
                f"{ctx.run_dir} has no torch.export programs in {exp_dir}; run the export stage with export.torch_export=true"
            )
    return folder, exp_dir


def serve(ctx: RunContext, format: str | None = None) -> Predictor:
    cfg = ctx.config.predict
    backend = format or cfg.backend
    folder, exp_dir = check(ctx, backend)
    # the tokenizer (and, for eager, the weights) come from this folder: every file of it the run
    # recorded is checked, a recorded file that is gone included
    recorded = {a["path"] for a in ctx.manifest.data.get("artifacts", [])}
    for name in HF_FILES:
        if f"{'/'.join(HF_DIR)}/{name}" in recorded or name == "model.safetensors":
            ctx.verify_artifact(folder / name)

    import torch

    from .files import quiet_transformers
    from .predict import Translator, generation_kwargs

    quiet_transformers()
    translator = Translator(folder, device=ctx.device)
    runner = None
    if backend == "exported":
        from .exported import DECODER, ENCODER, META, ExportedSeq2Seq

        for name in (ENCODER, DECODER, META):
            ctx.verify_artifact(exp_dir / name)
        runner = ExportedSeq2Seq(exp_dir)

    def translate(texts: list[str]) -> list[str]:
        torch.manual_seed(ctx.seed)  # sampling gives the same answer to the same request
        if runner is None:
            rows = translator(texts, batch_size=cfg.batch_size, **generation_kwargs(cfg))
            return [r["translation_text"] for r in rows]
        out: list[str] = []
        for i in range(0, len(texts), cfg.batch_size):
            enc = translator.encode(texts[i : i + cfg.batch_size])
            if cfg.num_beams > 1:
                ids = runner.beam(enc["input_ids"], enc["attention_mask"], cfg.max_new_tokens, cfg.num_beams)
            else:
                ids = runner.greedy(enc["input_ids"], enc["attention_mask"], cfg.max_new_tokens)
            out += [t.strip() for t in translator.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return out

    def predict(items: list[TranslateRequest]) -> list[TranslateResponse]:
        # one request's sentences are translated together, in predict.batch_size chunks, as
        # `mlx predict` does: padding never mixes two requests, so answers never depend on company
        return [TranslateResponse(translations=translate(list(r.sentences)), backend=backend) for r in items]

    meta = translator.meta
    return Predictor(
        request=TranslateRequest,
        response=TranslateResponse,
        predict=predict,
        batches=False,
        title=f"translation {meta.get('source_lang', '?')} -> {meta.get('target_lang', '?')} ({backend}): "
        "type sentences, one per line, get their translations",
        examples=[{"sentences": ["The cat is blue.", "I see two dogs."]}],
        facts={"format": backend, "runtime": "transformers" if runner is None else "torch.export",
               "prefix": meta.get("prefix", ""), "max_new_tokens": cfg.max_new_tokens, "num_beams": cfg.num_beams},
    )  # fmt: skip
