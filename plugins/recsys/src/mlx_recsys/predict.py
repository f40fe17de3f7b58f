"""Score Criteo-format TSV files with a run's exported int8 module (no training code needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlx_core import DataError, RunError

from .config import N_COLUMNS_UNLABELED
from .data import N_COLUMNS, BadLine, Schema, decode, parse_line, to_batch
from .export import META_FILE, MODEL_FILE, load_scorer


def predict(ctx: Any, inputs: list[str]) -> list[dict[str, Any]]:
    import torch

    from .metrics import auc

    model_path = ctx.run_dir.joinpath(*MODEL_FILE)
    meta_path = ctx.run_dir.joinpath(*META_FILE)
    if not model_path.exists() or not meta_path.exists():
        raise RunError(f"{ctx.run_dir} has no export ({model_path.name}); run `mlx run recsys export` first")
    meta = json.loads(meta_path.read_text())
    schema = Schema(**meta["schema"])
    module = load_scorer(model_path)
    bs = ctx.config.predict.batch_size
    on_bad = ctx.config.data.on_bad_line
    rows = []
    for text in inputs:
        path = Path(text)
        if not path.is_file():
            raise DataError(f"input {text} is not a file (expected a Criteo-format TSV)")
        out_path = ctx.output_dir / f"{path.stem}.scores.tsv"
        probs, labels, labeled, skipped = [], [], True, 0
        buf: list = []

        def flush(buf=buf, probs=probs, labels=labels) -> None:
            dense, kjt, y = to_batch(buf, schema.features)
            with torch.no_grad():
                probs.append(module(dense, kjt.values(), kjt.lengths()))
            labels.append(y)
            buf.clear()

        with open(path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    line = decode(raw)
                    # unlabeled lines (the Criteo test format: 39 columns) are scored too
                    if line.rstrip("\r\n").count("\t") == N_COLUMNS_UNLABELED - 1:
                        line, labeled = "0\t" + line, False
                    buf.append(parse_line(line, schema))
                except BadLine as bad:
                    if on_bad == "error":
                        raise DataError(
                            f"{path}:{lineno}: {bad} (set data.on_bad_line=skip to skip such lines)"
                        ) from None
                    skipped += 1
                    continue
                if len(buf) == bs:
                    flush()
        if buf:
            flush()
        if not probs:
            raise DataError(f"{path}: no examples to score")
        p, y = torch.cat(probs), torch.cat(labels)
        with open(out_path, "w") as fh:
            fh.write("".join(f"{v:.6f}\n" for v in p.tolist()))
        row = {"input": str(path), "examples": int(p.numel()), "mean_score": float(p.mean()), "skipped": skipped,
               "scores": str(out_path)}  # fmt: skip
        if labeled:
            row["auc"] = auc(p, y)
        rows.append(row)
    return rows


__all__ = ["predict", "N_COLUMNS"]
