"""Hugging Face models in 8-bit or 4-bit through transformers' ``BitsAndBytesConfig``.

The embedded default is a small OPT-style causal LM with random weights, created and saved in
the run (``model/base``), so the whole path runs on a machine without downloads. Folders without
a tokenizer are read with a byte-level tokenizer (token id = UTF-8 byte; needs vocab >= 256).
"""

from __future__ import annotations

import difflib
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mlx_core import ConfigError, DataError

from .config import check_model_flags
from .data import TextData

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def quiet() -> None:
    """bitsandbytes warns on every int8 matmul that fp32 inputs are cast; transformers draws
    loading bars. Neither helps a user reading a run's log."""
    warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")
    warnings.filterwarnings("ignore", message=".*inputs will be cast.*")
    warnings.filterwarnings("ignore", message=".*meta device.*")
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


class ByteTokenizer:
    """Token ids are the text's UTF-8 bytes: the tokenizer of the generated model, and the fallback
    for a model folder that ships no tokenizer."""

    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def save_pretrained(self, folder: str | Path) -> None:
        (Path(folder) / "mlx_byte_tokenizer.txt").write_text("token id = UTF-8 byte value\n")


class HFTokenizer:
    def __init__(self, tok: Any):
        self.tok = tok

    def encode(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def save_pretrained(self, folder: str | Path) -> None:
        self.tok.save_pretrained(folder)


# --- the generated default ---------------------------------------------------------------------
def create_default_model(folder: Path, cfg: Any, seed: int) -> Path:
    """A small randomly initialised OPT-style causal LM saved with ``save_pretrained``."""
    from transformers import OPTConfig, OPTForCausalLM

    if cfg.load_in_4bit and (cfg.hidden_size % 64 or cfg.ffn_dim % 64):
        # bitsandbytes' CPU 4-bit kernels quantize the input features in blocks of 64
        raise ConfigError(
            f"4-bit needs model.hidden_size and model.ffn_dim divisible by 64 (blocks of 64 input features); "
            f"got {cfg.hidden_size} and {cfg.ffn_dim}"
        )
    if cfg.hidden_size % cfg.heads:
        raise ConfigError(f"model.heads={cfg.heads} does not divide model.hidden_size={cfg.hidden_size}")
    config = OPTConfig(
        vocab_size=256, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.layers, ffn_dim=cfg.ffn_dim,
        num_attention_heads=cfg.heads, max_position_embeddings=512, word_embed_proj_dim=cfg.hidden_size,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, dropout=0.0, attention_dropout=0.0,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = OPTForCausalLM(config)
    model.save_pretrained(folder)
    ByteTokenizer().save_pretrained(folder)
    return folder


# --- checks on a user's folder -----------------------------------------------------------------
def read_config(folder: Path, trust_remote_code: bool = False) -> Any:
    if not folder.is_dir():
        raise DataError(f"model.path {folder} is not a directory (expected a Hugging Face model folder)")
    if not (folder / "config.json").is_file():
        raise DataError(f"model.path {folder} is not a transformers model folder: it has no config.json")
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - any failure here means "not a transformers model"
        if not trust_remote_code and "trust_remote_code" in str(exc):
            raise DataError(f"model.path {folder} ships its own model code (auto_map); it is not run unless "
                            f"model.trust_remote_code=true") from None  # fmt: skip
        raise DataError(f"model.path {folder} is not a transformers model folder: {exc}".splitlines()[0]) from None
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise DataError(f"model.path {folder} has a config.json but no weights ({' or '.join(WEIGHT_FILES[::2])})")
    return config


def model_class(config: Any) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM


def skeleton(config: Any, trust_remote_code: bool = False) -> nn.Module:
    """The model built on the meta device (no weights read, no memory)."""
    cls = model_class(config)
    with torch.device("meta"):
        return cls.from_config(config, trust_remote_code=trust_remote_code)


def module_names(folder: Path, config: Any, trust_remote_code: bool = False) -> list[str]:
    """Every submodule name of the model."""
    return [n for n, _ in skeleton(config, trust_remote_code).named_modules() if n]


def default_skips(config: Any, trust_remote_code: bool = False) -> list[str]:
    """What transformers leaves unquantized when no skip list is given (tied / output embeddings,
    the last module). A user-given ``llm_int8_skip_modules`` *replaces* that list in transformers,
    which quantizes a tied ``lm_head`` whose weight is the embedding's and then fails at the first
    forward pass; so these are always added to the user's list."""
    from transformers.quantizers.base import get_keys_to_not_convert

    return sorted(get_keys_to_not_convert(skeleton(config, trust_remote_code)))


def matches(pattern: str, name: str) -> bool:
    """transformers' rule for skip-module names: a prefix up to a module boundary, a regex with
    that boundary, or a suffix."""
    boundary = r"(?:(?<=\.)|(?=\.|$))"
    try:
        if re.match(rf"(?:{pattern}){boundary}", name):
            return True
    except re.error:
        pass
    return name.endswith(pattern)


def close_names(pattern: str, names: list[str], n: int = 4) -> str:
    short = sorted({x.rsplit(".", 1)[-1] for x in names} | {re.sub(r"\.\d+\.", ".*.", x) for x in names})
    pool = sorted(set(names) | set(short))
    found = difflib.get_close_matches(pattern, pool, n=n, cutoff=0.4)
    return ", ".join(found) if found else "none (see `model.named_modules()`)"


def check_module_names(key: str, patterns: list[str], names: list[str], exact: bool = False) -> None:
    for p in patterns:
        ok = (p in names) if exact else any(matches(p, n) for n in names)
        if not ok:
            raise ConfigError(f"{key}: {p!r} names no module of the model; close names: {close_names(p, names)}")


# --- loading in the chosen precision -----------------------------------------------------------
def quantization_kwargs(cfg: Any, defaults: list[str] | None = None) -> dict[str, Any]:
    """The ``BitsAndBytesConfig`` arguments of this run's config (empty for an fp model).
    ``defaults``: the model's default skips, added when the user names modules to skip."""
    check_model_flags(cfg)
    skip = list(cfg.llm_int8_skip_modules)
    if cfg.llm_int8_enable_fp32_cpu_offload:
        # the modules on "cpu" are also listed as skipped so that the saved config reloads them
        # unquantized without any device_map (transformers derives them from the map only at load time)
        skip = skip + [m for m in cfg.cpu_fp32_modules if m not in skip]
    if skip and defaults:
        skip = skip + [m for m in defaults if m not in skip]
    if cfg.load_in_8bit:
        return {
            "load_in_8bit": True, "llm_int8_threshold": cfg.llm_int8_threshold,
            "llm_int8_skip_modules": skip or None,
            "llm_int8_enable_fp32_cpu_offload": cfg.llm_int8_enable_fp32_cpu_offload,
        }  # fmt: skip
    if cfg.load_in_4bit:
        return {
            "load_in_4bit": True, "bnb_4bit_quant_type": cfg.bnb_4bit_quant_type,
            "bnb_4bit_use_double_quant": cfg.bnb_4bit_use_double_quant,
            "bnb_4bit_compute_dtype": DTYPES[cfg.bnb_4bit_compute_dtype],
            "llm_int8_skip_modules": skip or None,
            "llm_int8_enable_fp32_cpu_offload": cfg.llm_int8_enable_fp32_cpu_offload,
        }  # fmt: skip
    return {}


def device_map(names: list[str], cpu_modules: list[str], device: str) -> dict[str, Any]:
    """A custom map: ``cpu_modules`` on "cpu" (kept in float32), everything else on the compute
    device. On a CPU-only machine the compute device is ``torch.device("cpu")``: transformers
    treats only the *string* "cpu" as offloaded, so the rest is still quantized."""
    compute: Any = 0 if device == "cuda" else torch.device("cpu")
    children: dict[str, list[str]] = {}
    for n in names:
        parent = n.rsplit(".", 1)[0] if "." in n else ""
        children.setdefault(parent, []).append(n)
    out: dict[str, Any] = {}

    def walk(prefix: str) -> None:
        for child in children.get(prefix, []):
            if child in cpu_modules:
                out[child] = "cpu"
            elif any(c.startswith(child + ".") for c in cpu_modules):
                walk(child)
            else:
                out[child] = compute

    walk("")
    return out


def load_model(folder: Path, cfg: Any, device: str, quantized: bool = True) -> nn.Module:
    """The model from ``folder``: quantized as the config asks, or (``quantized=False``) the
    unquantized reference in ``torch_dtype``."""
    from transformers import BitsAndBytesConfig

    quiet()
    config = read_config(folder, cfg.trust_remote_code)
    cls = model_class(config)
    kwargs: dict[str, Any] = {"dtype": DTYPES[cfg.torch_dtype], "trust_remote_code": cfg.trust_remote_code}
    qkw = quantization_kwargs(cfg, default_skips(config, cfg.trust_remote_code)) if quantized else {}
    if qkw:
        kwargs["quantization_config"] = BitsAndBytesConfig(**qkw)
        names = module_names(folder, config, cfg.trust_remote_code)
        if qkw.get("llm_int8_skip_modules"):
            check_module_names("model.llm_int8_skip_modules", list(cfg.llm_int8_skip_modules), names)
        if cfg.llm_int8_enable_fp32_cpu_offload:
            check_module_names("model.cpu_fp32_modules", list(cfg.cpu_fp32_modules), names, exact=True)
            kwargs["device_map"] = device_map(names, list(cfg.cpu_fp32_modules), device)
        else:
            kwargs["device_map"] = {"": 0 if device == "cuda" else "cpu"}
    try:
        model = cls.from_pretrained(folder, **kwargs)
    except (OSError, ValueError) as exc:
        raise DataError(f"model.path {folder}: transformers cannot load it: {exc}".splitlines()[0]) from None
    if not qkw and device == "cuda":
        model = model.to("cuda")
    return model.eval()


def portable_quantization_config(model: nn.Module) -> None:
    """Make the saved config reload with no arguments. The fp32 CPU offload is a placement made at
    load time through a device_map; saved with the flag on, a reload without a device_map maps the
    whole model to "cpu" and transformers then leaves *every* layer unquantized (with int8 weights
    in plain Linear layers). The offloaded modules are already in ``llm_int8_skip_modules``."""
    qc = getattr(model.config, "quantization_config", None)
    if qc is None:
        return
    if isinstance(qc, dict):
        qc["llm_int8_enable_fp32_cpu_offload"] = False
    else:
        qc.llm_int8_enable_fp32_cpu_offload = False


def load_tokenizer(folder: Path, trust_remote_code: bool = False) -> Any:
    if (folder / "mlx_byte_tokenizer.txt").is_file() or not any(
        (folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "spiece.model")
    ):
        return ByteTokenizer()
    from transformers import AutoTokenizer

    try:
        return HFTokenizer(AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code))
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"model.path {folder}: its tokenizer cannot be loaded: {exc}".splitlines()[0]) from None


def windows(texts: list[str], tokenizer: Any, seq_len: int, limit: int | None = None) -> torch.Tensor:
    """Documents joined by newlines, tokenized and cut into full windows of ``seq_len`` tokens."""
    ids = tokenizer.encode("\n".join(texts))
    n = len(ids) // seq_len
    if n == 0:
        raise DataError(f"the text has {len(ids)} tokens: fewer than one window of data.seq_len={seq_len}")
    if limit:
        n = min(n, limit)
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)


@dataclass
class LMBundle:
    """What the model stage hands on."""

    folder: Path
    model: nn.Module
    tokenizer: Any
    kind: str
    quantization: dict[str, Any]
    train_windows: torch.Tensor
    eval_windows: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)


def linear_weight_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes of Linear weights (+ their quantization constants), by module name."""
    out: dict[str, int] = {}
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Linear):  # bnb's Linear8bitLt / Linear4bit subclass nn.Linear
            continue
        w = mod.weight
        total = w.numel() * w.element_size()
        scb = getattr(w, "SCB", None)
        if scb is None and getattr(mod, "state", None) is not None:
            scb = getattr(mod.state, "SCB", None)
        if isinstance(scb, torch.Tensor):
            total += scb.numel() * scb.element_size()
        qs = getattr(w, "quant_state", None)
        if qs is not None:
            for t in (getattr(qs, "absmax", None), getattr(qs, "code", None)):
                if isinstance(t, torch.Tensor):
                    total += t.numel() * t.element_size()
            nested = getattr(qs, "state2", None)
            if nested is not None:
                for t in (getattr(nested, "absmax", None), getattr(nested, "code", None)):
                    if isinstance(t, torch.Tensor):
                        total += t.numel() * t.element_size()
        out[name] = int(total)
    return out


def count_quantized(model: nn.Module) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            kinds[type(mod).__name__] = kinds.get(type(mod).__name__, 0) + 1
    return kinds


def build_model(ctx, data: TextData) -> LMBundle:
    cfg = ctx.config.model
    qkw = quantization_kwargs(cfg)  # refuse contradictory settings before any work
    if cfg.path is None:
        folder = ctx.path("model", "base")
        if not (ctx.resumed and (folder / "config.json").is_file()):
            with ctx.progress("create the default OPT-style model", total=None), ctx.atomic_dir("model", "base") as tmp:
                create_default_model(tmp, cfg, ctx.seed)  # a kill mid-write leaves no half model to resume
        ctx.record("trained", False)
        ctx.note("the default model is a randomly initialised OPT-style LM created in the run (no download): "
                 "it is untrained, so its perplexities measure quantization error, not language quality")  # fmt: skip
        ctx.add_artifact(folder / "config.json", kind="model-config", generated=True)
    else:
        folder = Path(cfg.path).expanduser()
        read_config(folder, cfg.trust_remote_code)
    if not qkw:
        ctx.note("neither model.load_in_8bit nor model.load_in_4bit is set: the model is loaded unquantized")
    with ctx.progress(
        "load the model " + ("in 8-bit" if cfg.load_in_8bit else "in 4-bit" if cfg.load_in_4bit else ""), total=None
    ):
        model = load_model(folder, cfg, ctx.device)
    if qkw:
        qkw = quantization_kwargs(
            cfg, default_skips(model.config, cfg.trust_remote_code)
        )  # as loaded (with the default skips)
    tok = load_tokenizer(folder, cfg.trust_remote_code)
    vocab = (
        model.config.vocab_size if not getattr(model.config, "is_encoder_decoder", False) else model.config.vocab_size
    )
    if isinstance(tok, ByteTokenizer) and vocab < 256:
        raise DataError(f"model.path {folder} ships no tokenizer and its vocab_size {vocab} < 256 (needed for bytes)")
    seq = ctx.config.data.seq_len
    train_w = windows(data.train, tok, seq)
    eval_w = windows(data.eval, tok, seq, ctx.config.data.max_eval_windows)
    kind = "seq2seq" if getattr(model.config, "is_encoder_decoder", False) else "causal"
    info = {
        "folder": str(folder), "kind": kind, "class": type(model).__name__,
        "quantization": {k: str(v) if isinstance(v, torch.dtype) else v for k, v in qkw.items()},
        "linear_layers": count_quantized(model), "memory_footprint_bytes": int(model.get_memory_footprint()),
        "train_windows": int(train_w.shape[0]), "eval_windows": int(eval_w.shape[0]),
    }  # fmt: skip
    ctx.record("model", info)
    ctx.log(f"[model] {type(model).__name__} from {folder}: linear layers {info['linear_layers']}, "
            f"footprint {info['memory_footprint_bytes'] / 1e6:.3f} MB")  # fmt: skip
    return LMBundle(folder, model, tok, kind, info["quantization"], train_w, eval_w, info)
