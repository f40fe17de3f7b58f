"""Model stage: ``AutoModelForSeq2SeqLM`` from a local checkpoint folder, or a small random T5.

Checks that turn library tracebacks into one-line errors: the folder must hold a seq2seq
config (``AutoModelForSeq2SeqLM`` supports its ``model_type``), loadable weights, and an input
embedding with at least as many rows as the tokenizer has tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlx_core import ConfigError, DataError

from . import offline
from .files import quiet_transformers

offline()  # before transformers or datasets is first imported: nothing may be downloaded


def _seq2seq_types() -> list[str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES

    return sorted(MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES)


def check_folder(path: str | Path) -> Path:
    """The folder exists and its config.json names a seq2seq model type; DataError otherwise."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ConfigError(
            f"model.path {str(path)!r} is not a folder; expected a local checkpoint folder (config.json, weights, tokenizer)"
        )
    if not (p / "config.json").is_file():
        raise DataError(
            f"model.path {str(path)!r} has no config.json; expected a seq2seq checkpoint folder written by save_pretrained"
        )
    try:
        model_type = json.loads((p / "config.json").read_text()).get("model_type")
    except (OSError, ValueError) as exc:
        raise DataError(f"model.path {str(path)!r}: config.json is not readable JSON ({exc})") from None
    if model_type not in _seq2seq_types():
        raise DataError(
            f"model.path {str(path)!r} is not a seq2seq model: config.json has model_type {model_type!r}; "
            "expected one AutoModelForSeq2SeqLM supports (t5, mt5, bart, marian, ...)"
        )
    return p


def load_pretrained(path: str | Path):
    """A seq2seq model from a local folder; DataError (one line) for anything else."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    p = check_folder(path)
    try:
        config = AutoConfig.from_pretrained(str(p), local_files_only=True, trust_remote_code=False)
        return AutoModelForSeq2SeqLM.from_pretrained(
            str(p), config=config, local_files_only=True, trust_remote_code=False
        )
    except Exception as exc:  # noqa: BLE001 - one line for whatever the library raises on a broken folder
        raise DataError(
            f"model.path {str(path)!r}: cannot load the seq2seq model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from None


def random_t5(cfg, tokenizer):
    """A small randomly initialised T5 sized for ``tokenizer``."""
    from transformers import T5Config, T5ForConditionalGeneration

    if cfg.d_model % cfg.num_heads:
        raise ConfigError(f"model.d_model={cfg.d_model} is not divisible by model.num_heads={cfg.num_heads}")
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=cfg.d_model,
        d_kv=cfg.d_model // cfg.num_heads,
        d_ff=cfg.d_ff,
        num_layers=cfg.num_layers,
        num_decoder_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        dropout_rate=cfg.dropout,
        feed_forward_proj="relu",
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return T5ForConditionalGeneration(config)


def check_vocab(model, tokenizer, where: str) -> None:
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise DataError(
            f"{where}: tokenizer has {len(tokenizer)} tokens but the model's input embedding has only {rows} rows; "
            "expected a tokenizer that matches the model (vocabulary <= embedding size)"
        )


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def build(ctx, data: dict[str, Any]):
    import torch

    quiet_transformers()
    cfg = ctx.config.model
    tokenizer = data["tokenizer"]
    torch.manual_seed(ctx.seed)
    if cfg.path:
        model = load_pretrained(cfg.path)
        check_vocab(model, tokenizer, f"model.path {cfg.path!r}")
        ctx.record("trained", True)
        ctx.record(
            "model",
            {
                "source": "pretrained",
                "path": str(Path(cfg.path).expanduser().resolve()),
                "class": type(model).__name__,
                "parameters": n_params(model),
            },
        )
    else:
        model = random_t5(cfg, tokenizer)
        check_vocab(model, tokenizer, "from-scratch T5")
        ctx.record("trained", False)
        ctx.record(
            "model",
            {
                "source": "random init (trained from scratch)",
                "class": type(model).__name__,
                "parameters": n_params(model),
            },
        )
        ctx.note("model is a randomly initialised T5: it is trained from scratch on the run's corpus")
    if model.config.decoder_start_token_id is None:
        raise DataError(
            f"model.path {cfg.path!r}: config has no decoder_start_token_id; expected a seq2seq checkpoint that sets it"
        )
    return model.to(ctx.device)
