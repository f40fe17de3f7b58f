"""quant's predictor: what ``mlx serve`` serves and ``mlx predict`` runs (stage table ``serve``).

Texts in; the greedy continuation of each and/or its perplexity under the quantized model out.
The model is the export's ``save_pretrained`` folder (``export/model``), loaded by transformers
with the ``quantization_config`` its ``config.json`` carries (bitsandbytes int8 / 4-bit), plus the
LoRA adapters of ``export/adapter`` through peft when the run trained them; never the stage code.
Every file of those folders is checked against the sha256 run.json recorded before it is loaded.

A quant run of another plugin's model (``source.run``: torchao state dicts, a PT2E ExecuTorch
program) is not a language model quant can serve: one line, exit 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from mlx_core import ConfigError, DataError, Predictor, Request, Response, RunContext, RunError

#: ``--format``: the quantized base with the run's LoRA adapters, or the base alone
FORMATS = ("lora", "base")
MAX_TEXTS = 64
#: the most tokens one request may ask for when the model states no length limit of its own
MAX_NEW_TOKENS = 1024
#: files whose presence means a Hugging Face tokenizer (else: token id = UTF-8 byte, as quant's model stage reads it)
HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "spiece.model")
BYTE_TOKENIZER = "mlx_byte_tokenizer.txt"

Mode = Literal["generate", "perplexity", "both"]


class TextResult(Response):
    text: str = Field(description="the text as sent")
    tokens: int = Field(description="its length in tokens of the model's tokenizer")
    generated: str | None = Field(
        None, description="greedy continuation (the decoder's output for an encoder-decoder); generate/both"
    )
    perplexity: float | None = Field(None, description="exp(mean token cross-entropy) of the text; perplexity/both")


class LMResponse(Response):
    results: list[TextResult] = Field(description="one result per text, in order")
    mode: str = Field(description="generate, perplexity or both")
    format: str = Field(description="lora (quantized base + LoRA adapters) or base (the quantized base alone)")


@dataclass
class Export:
    """Where a quant run's exported language model is, read from run.json (no heavy import)."""

    model_dir: Path
    adapter_dir: Path | None
    format: str
    entry: dict[str, Any]


def check(ctx: RunContext, fmt: str | None) -> Export:
    """The exported folders of the run for ``fmt``, or one line saying why quant cannot serve it."""
    src = ctx.config.source.run
    if src:
        kinds = sorted({Path(a["path"]).name for a in ctx.manifest.artifacts("quantized")})
        raise RunError(
            f"{ctx.run_dir} is a post-training quantization of another plugin's model (source.run={src}; "
            f"artifacts: {', '.join(kinds) or 'none'}), not a language model quant serves; quant serves the "
            f"bitsandbytes language-model runs (`mlx run quant export`); serve the source run itself: mlx serve {src}"
        )
    exported = [a for a in ctx.manifest.artifacts("model") if a.get("stage") == "export" and a.get("folder")]
    if not ctx.manifest.completed("export") or not exported:
        raise RunError(
            f"{ctx.run_dir} has no exported quantized model (its export stage is "
            f"{ctx.manifest.stage_status('export')}); finish it first: mlx run quant export --from {ctx.run_dir}"
        )
    entry = exported[-1]
    adapters = [a for a in ctx.manifest.artifacts("adapter") if a.get("stage") == "export"]
    adapter_dir = ctx.run_dir / Path(adapters[-1]["path"]).parent if adapters else None
    fmt = fmt or ("lora" if adapter_dir is not None else "base")
    if fmt not in FORMATS:
        raise RunError(f"quant serves the formats {', '.join(FORMATS)}; there is no {fmt!r}")
    if fmt == "lora" and adapter_dir is None:
        raise RunError(
            f"{ctx.run_dir} exported no LoRA adapters (train.epochs=0); serve the quantized base: --format base"
        )
    return Export(ctx.run_dir / entry["folder"], adapter_dir if fmt == "lora" else None, fmt, entry)


def verify_folder(ctx: RunContext, folder: Path) -> None:
    """Every file of ``folder`` through the core's sha256 check: from_pretrained reads what it
    finds there, so a file run.json does not record (or one that changed) is refused."""
    if not folder.is_dir():
        raise RunError(f"{folder} (recorded in {ctx.run_dir}/run.json) is missing")
    for f in sorted(folder.iterdir()):
        if f.is_file():
            ctx.verify_artifact(f)


class Tokens:
    """The exported folder's tokenizer: transformers' when the folder ships one, else bytes (the
    convention of quant's generated model and of folders without a tokenizer)."""

    def __init__(self, folder: Path, trust_remote_code: bool):
        self.hf = None
        if not (folder / BYTE_TOKENIZER).is_file() and any((folder / f).is_file() for f in HF_TOKENIZER_FILES):
            from transformers import AutoTokenizer

            self.hf = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)

    def encode(self, text: str) -> list[int]:
        if self.hf is None:
            return list(text.encode("utf-8"))
        return list(self.hf(text, add_special_tokens=False)["input_ids"])  # as the model stage windows text

    def decode(self, ids: list[int], special: set[int]) -> str:
        if self.hf is None:
            return bytes(i for i in ids if i not in special and 0 <= i < 256).decode("utf-8", errors="replace")
        return self.hf.decode(ids, skip_special_tokens=True)


def length_limit(config: Any, tokens: Tokens) -> int | None:
    """The most positions the model takes (None: it states no limit)."""
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokens.hf, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else None


def request_model(limit: int | None, cfg: Any) -> type[Request]:
    """The request schema, with the model's own bound on max_new_tokens (shown in /docs)."""
    cap = min(MAX_NEW_TOKENS, limit - 1) if limit else MAX_NEW_TOKENS
    if cfg.max_new_tokens > cap:
        raise ConfigError(f"predict.max_new_tokens={cfg.max_new_tokens} is over this model's limit of {cap}")

    class LMRequest(Request):
        texts: list[Annotated[str, Field(min_length=1)]] = Field(
            min_length=1, max_length=MAX_TEXTS, description="texts (one per line on the page), each scored alone"
        )
        mode: Mode = Field(cfg.mode, description="generate, perplexity or both")
        max_new_tokens: int = Field(
            cfg.max_new_tokens, ge=1, le=cap, description="tokens generated per text (greedy; generate/both)"
        )

    return LMRequest


def prepare_texts(req: Any, tokens: Tokens, limit: int | None, causal: bool) -> list[list[int]]:
    """Token ids of each text, or one ``DataError`` line naming the text and the bound it breaks."""
    out = []
    for n, text in enumerate(req.texts, 1):
        ids = tokens.encode(text)
        name = f"text {n} ({text[:40]!r}{'...' if len(text) > 40 else ''})"
        if not ids:
            raise DataError(f"{name} has no tokens; expected some text")
        if req.mode != "generate" and causal and len(ids) < 2:
            raise DataError(f"{name} has 1 token; its perplexity needs at least 2 (the first token is not predicted)")
        if limit is not None and len(ids) > limit:
            raise DataError(f"{name} has {len(ids)} tokens, over the model's length limit of {limit}")
        if limit is not None and req.mode != "perplexity" and causal and len(ids) + req.max_new_tokens > limit:
            raise DataError(
                f"{name} has {len(ids)} tokens + max_new_tokens {req.max_new_tokens} = {len(ids) + req.max_new_tokens}, "
                f"over the model's length limit of {limit}; send a shorter text or ask for fewer tokens"
            )
        out.append(ids)
    return out


def load(ctx: RunContext, exp: Export) -> tuple[Any, Tokens]:
    """The quantized model as the export wrote it (its config.json carries the quantization
    arguments: none are given here), with the adapters for format ``lora``; and its tokenizer."""
    verify_folder(ctx, exp.model_dir)
    if exp.adapter_dir is not None:
        verify_folder(ctx, exp.adapter_dir)
    import logging

    # transformers' quantizers import torchao, whose enum registration torch warns about on stderr
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    from .model import model_class, quiet

    quiet()
    from transformers import AutoConfig

    trust = ctx.config.model.trust_remote_code
    config = AutoConfig.from_pretrained(exp.model_dir, trust_remote_code=trust)
    kwargs: dict[str, Any] = {"trust_remote_code": trust}
    if ctx.device == "cuda":
        kwargs["device_map"] = {"": 0}
    model = model_class(config).from_pretrained(exp.model_dir, **kwargs).eval()
    if exp.adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, exp.adapter_dir).eval()
    return model, Tokens(exp.model_dir, trust)


def serve(ctx: RunContext, format: str | None = None) -> Predictor:
    exp = check(ctx, format)
    model, tokens = load(ctx, exp)
    import torch

    config = model.config
    causal = not getattr(config, "is_encoder_decoder", False)
    limit = length_limit(config, tokens)
    LMRequest = request_model(limit, ctx.config.predict)
    device = next(p.device for p in model.parameters() if p.device.type != "meta")
    special = {i for i in (config.eos_token_id, config.pad_token_id, getattr(config, "decoder_start_token_id", None))
               if isinstance(i, int)}  # fmt: skip
    pad = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id

    @torch.no_grad()
    def perplexity(ids: list[int]) -> float:
        t = torch.tensor([ids], device=device)
        return math.exp(float(model(input_ids=t, labels=t).loss))  # the loss the export's perplexity averages

    @torch.no_grad()
    def generate(ids: list[int], n: int) -> str:
        t = torch.tensor([ids], device=device)
        out = model.generate(input_ids=t, attention_mask=torch.ones_like(t), max_new_tokens=n, do_sample=False,
                             num_beams=1, pad_token_id=pad)  # fmt: skip
        return tokens.decode(out[0, t.shape[1] :].tolist() if causal else out[0].tolist(), special)

    def prepare(req: Any) -> tuple[Any, list[list[int]]]:
        return req, prepare_texts(req, tokens, limit, causal)

    def predict(items: list[tuple[Any, list[list[int]]]]) -> list[LMResponse]:
        out = []
        for req, all_ids in items:  # one text at a time: no padding, answers never depend on company
            rows = [TextResult(text=text, tokens=len(ids),
                               generated=generate(ids, req.max_new_tokens) if req.mode != "perplexity" else None,
                               perplexity=perplexity(ids) if req.mode != "generate" else None)
                    for text, ids in zip(req.texts, all_ids, strict=True)]  # fmt: skip
            out.append(LMResponse(results=rows, mode=req.mode, format=exp.format))
        return out

    from .model import count_quantized

    qc = getattr(config, "quantization_config", None)
    qc = qc.to_dict() if hasattr(qc, "to_dict") else qc
    precision = exp.entry.get("precision", "?")
    return Predictor(
        request=LMRequest,
        response=LMResponse,
        prepare=prepare,
        predict=predict,
        batches=False,
        title=f"quant: {type(model).__name__} in {precision}"
        + (" + LoRA" if exp.adapter_dir is not None else "")
        + ": type texts, one per line, get their greedy continuation and/or perplexity",
        examples=[
            {"texts": ["The quick brown fox"], "mode": "generate", "max_new_tokens": 16},
            {"texts": ["The cat sat on the mat.", "Mat the on sat cat the."], "mode": "perplexity"},
        ],
        facts={
            "format": exp.format,
            "runtime": "transformers + bitsandbytes" + (" + peft" if exp.adapter_dir else ""),
            "precision": precision,
            "quantization_config": qc,
            "linear_layers": count_quantized(model),
            "length_limit": limit,
            "tokenizer": "bytes" if tokens.hf is None else type(tokens.hf).__name__,
            "reload_max_abs_diff": exp.entry.get("reload_max_abs_diff"),
            "model_class": type(model).__name__,
        },  # fmt: skip
    )
