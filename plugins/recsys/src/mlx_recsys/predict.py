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
    model_path = ctx.run_dir.joinpath(*MODEL_FILE)
    meta_path = ctx.run_dir.joinpath(*META_FILE)
    if not model_path.exists() or not meta_path.exists():
        raise RunError(f"{ctx.run_dir} has no export ({model_path.name}); run `mlx run recsys export` first")
    meta = json.loads(meta_path.read_text())
    schema = Schema(**meta["schema"])
    module = load_scorer(model_path)
    rows = []
    for text in inputs:
        path = Path(text)
        if not path.is_file():
            raise DataError(f"input {text} is not a file (expected a Criteo-format TSV)")
        rows.append(_score_file(ctx, module, schema, path))
    return rows


def _score_file(ctx: Any, module: Any, schema: Schema, path: Path) -> dict[str, Any]:
    """Score one TSV file in batches; its scores go to ``<output_dir>/<stem>.scores.tsv``."""
    import torch

    from .metrics import auc

    probs, labels = [], []
    lines = _Examples(path, schema, ctx.config.data.on_bad_line)
    for batch in _batches(lines, ctx.config.predict.batch_size):
        dense, kjt, y = to_batch(batch, schema.features)
        with torch.no_grad():
            probs.append(module(dense, kjt.values(), kjt.lengths()))
        labels.append(y)
    if not probs:
        raise DataError(f"{path}: no examples to score")
    p, y = torch.cat(probs), torch.cat(labels)
    out_path = ctx.output_dir / f"{path.stem}.scores.tsv"
    with open(out_path, "w") as fh:
        fh.write("".join(f"{v:.6f}\n" for v in p.tolist()))
    row = {"input": str(path), "examples": int(p.numel()), "mean_score": float(p.mean()), "skipped": lines.skipped,
           "scores": str(out_path)}  # fmt: skip
    if lines.labeled:
        row["auc"] = auc(p, y)
    return row


class _Examples:
    """The parsed examples of a TSV file, in order; counts the bad lines it skipped and notes
    whether every line was labeled (unlabeled lines, the Criteo test format, are scored too)."""

    def __init__(self, path: Path, schema: Schema, on_bad: str) -> None:
        self.path, self.schema, self.on_bad = path, schema, on_bad
        self.skipped, self.labeled = 0, True

    def __iter__(self):  # type: ignore[no-untyped-def]
        with open(self.path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    line = decode(raw)
                    if line.rstrip("\r\n").count("\t") == N_COLUMNS_UNLABELED - 1:
                        line, self.labeled = "0\t" + line, False
                    example = parse_line(line, self.schema)
                except BadLine as bad:
                    if self.on_bad == "error":
                        raise DataError(
                            f"{self.path}:{lineno}: {bad} (set data.on_bad_line=skip to skip such lines)"
                        ) from None
                    self.skipped += 1
                    continue
                yield example


def _batches(items: Any, size: int) -> Any:
    buf: list = []
    for item in items:
        buf.append(item)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


__all__ = ["predict", "N_COLUMNS"]
