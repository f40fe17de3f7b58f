"""``mlx predict quant RUN_DIR "text" ... | FILE``: the predictor ``mlx serve`` serves, on the
command line's texts (``predict.mode``, ``predict.max_new_tokens`` from ``--set``).

An input that names an existing file contributes its non-empty lines, each a text; any other
input is a text. The rows go to ``predictions.jsonl`` in the prediction folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlx_core import DataError, atomic_write


def expand_inputs(inputs: list[str]) -> list[str]:
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
                raise DataError(f"input file {item!r} has no text; expected one text per line")
            texts += lines
        elif not item.strip():
            raise DataError(f"input {item!r} is empty; expected a text or a file of texts")
        else:
            texts.append(item)
    return texts


def run(ctx, inputs: list[str]) -> list[dict[str, Any]]:
    from .serve import MAX_TEXTS, check, serve

    cfg = ctx.config.predict
    check(ctx, None)  # a run quant cannot serve fails before any heavy import
    texts = expand_inputs(inputs)
    if len(texts) > MAX_TEXTS:
        raise DataError(f"{len(texts)} texts given; mlx predict takes at most {MAX_TEXTS} per call")
    predictor = serve(ctx)
    (res,) = predictor.run([predictor.request(texts=texts, mode=cfg.mode, max_new_tokens=cfg.max_new_tokens)])
    rows = [{k: v for k, v in r.model_dump().items() if v is not None} for r in res.results]
    if ctx.output_dir is not None:
        atomic_write(
            Path(ctx.output_dir) / "predictions.jsonl",
            "".join(json.dumps({**r, "mode": res.mode, "format": res.format}, ensure_ascii=False) + "\n" for r in rows),
        )
    return rows
