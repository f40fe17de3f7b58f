"""``mlx predict translation RUN_DIR "text" ... | FILE``: batched translation with generation options.

An input that names an existing file is read as one sentence per non-empty line; any other input
is a sentence. The task prefix of the run is prepended unless the sentence already starts with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlx_core import DataError

from . import offline
from .export import PLUGIN_META

offline()  # before transformers or datasets is first imported: nothing may be downloaded


class Translator:
    """``pipeline("translation")``-shaped wrapper of an exported run (``[{"translation_text": ...}]``)."""

    def __init__(self, folder: str | Path, device: str = "cpu"):
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.folder = Path(folder)
        meta_path = self.folder / PLUGIN_META
        self.meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"prefix": "", "max_length": 128}
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True, trust_remote_code=False)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(
            str(self.folder), local_files_only=True, trust_remote_code=False
        )
        self.model = self.model.to(device).eval()
        self.device = device

    def with_prefix(self, text: str) -> str:
        prefix = self.meta.get("prefix", "")
        return text if text.startswith(prefix) else prefix + text

    def encode(self, texts: list[str]):
        return self.tokenizer(
            [self.with_prefix(t) for t in texts],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.meta.get("max_length", 128),
        )

    def generate(self, texts: list[str], **gen: Any):
        import torch

        enc = self.encode(texts).to(self.device)
        with torch.no_grad():
            return self.model.generate(**enc, **gen)

    def __call__(self, texts: str | list[str], batch_size: int = 16, **gen: Any) -> list[dict[str, str]]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        out: list[dict[str, str]] = []
        for i in range(0, len(texts), batch_size):
            ids = self.generate(texts[i : i + batch_size], **gen)
            out += [{"translation_text": t.strip()} for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return out


def expand_inputs(inputs: list[str]) -> list[str]:
    """Sentences from the command line; an existing file contributes its non-empty lines."""
    texts: list[str] = []
    for item in inputs:
        p = Path(item)
        if len(item) < 4096 and p.is_file():
            try:
                lines = [line.strip() for line in p.read_text(encoding="utf-8").splitlines()]
            except (OSError, UnicodeDecodeError) as exc:
                raise DataError(f"input file {item!r} is not readable UTF-8 text ({exc})") from None
            lines = [line for line in lines if line]
            if not lines:
                raise DataError(f"input file {item!r} has no sentences; expected one sentence per line")
            texts += lines
        elif not item.strip():
            raise DataError(f"input {item!r} is empty; expected a sentence or a file of sentences")
        else:
            texts.append(item)
    return texts


def generation_kwargs(cfg) -> dict[str, Any]:
    gen: dict[str, Any] = {"max_new_tokens": cfg.max_new_tokens, "num_beams": cfg.num_beams, "do_sample": cfg.do_sample}
    if cfg.do_sample:
        gen.update(top_k=cfg.top_k, top_p=cfg.top_p, temperature=cfg.temperature)
    return gen


def run(ctx, inputs: list[str]) -> list[dict[str, Any]]:
    """Run the predictor ``mlx serve`` serves (``serve.serve``) on the sentences: the same output."""
    from .serve import TranslateRequest, check, serve

    cfg = ctx.config.predict
    # every check of the user's input comes before the heavy imports, so mistakes fail in a second
    check(ctx, cfg.backend)
    texts = expand_inputs(inputs)
    predictor = serve(ctx)
    (res,) = predictor.run([TranslateRequest(sentences=texts)])
    rows = [{"source": s, "translation": t} for s, t in zip(texts, res.translations, strict=True)]
    if ctx.output_dir is not None:
        from mlx_core import atomic_write

        atomic_write(
            Path(ctx.output_dir) / "translations.jsonl",
            "".join(json.dumps({**r, "backend": cfg.backend}, ensure_ascii=False) + "\n" for r in rows),
        )
    return rows
