"""Score Criteo-format TSV files with a run's exported int8 module (no training code needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlx_core import DataError

from .data import N_COLUMNS, BadLine, Schema, decode, parse_line
from .export import META_FILE


def predict(ctx: Any, inputs: list[str]) -> list[dict[str, Any]]:
    """Score files with the predictor ``mlx serve`` serves (``serve.serve``): the same probabilities."""
    from .serve import serve

    for text in inputs:  # every input checked (one line naming it) before the scorer is loaded
        if not Path(text).is_file():
            raise DataError(f"input {text} is not a file (expected a Criteo-format TSV)")
    predictor = serve(ctx)
    schema = Schema(**json.loads(ctx.run_dir.joinpath(*META_FILE).read_text())["schema"])
    return [_score_file(ctx, predictor, schema, Path(text)) for text in inputs]


def _score_file(ctx: Any, predictor: Any, schema: Schema, path: Path) -> dict[str, Any]:
    """Score one TSV file; its scores go to ``<output_dir>/<stem>.scores.tsv``."""
    from .metrics import auc
    from .serve import ScoreRequest

    lines = _Lines(path, schema, ctx.config.data.on_bad_line)
    good = list(lines)
    if not good:
        raise DataError(f"{path}: no examples to score")
    (res,) = predictor.run([ScoreRequest(lines=[text for text, _ in good])])
    p = res.probabilities
    out_path = ctx.output_dir / f"{path.stem}.scores.tsv"
    with open(out_path, "w") as fh:
        fh.write("".join(f"{v:.6f}\n" for v in p))
    row = {"input": str(path), "examples": len(p), "mean_score": sum(p) / len(p), "skipped": lines.skipped,
           "scores": str(out_path)}  # fmt: skip
    if lines.labeled:
        import torch

        row["auc"] = auc(torch.tensor(p), torch.tensor([y for _, y in good]))
    return row


class _Lines:
    """The good lines of a TSV file with their labels, in order; counts the bad lines it skipped
    and notes whether every line was labeled (unlabeled lines, the Criteo test format, are scored too)."""

    def __init__(self, path: Path, schema: Schema, on_bad: str) -> None:
        self.path, self.schema, self.on_bad = path, schema, on_bad
        self.skipped, self.labeled = 0, True

    def __iter__(self):  # type: ignore[no-untyped-def]
        from .serve import labeled

        with open(self.path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    line, has_label = labeled(decode(raw))
                    self.labeled = self.labeled and has_label
                    example = parse_line(line, self.schema)
                except BadLine as bad:
                    if self.on_bad == "error":
                        raise DataError(
                            f"{self.path}:{lineno}: {bad} (set data.on_bad_line=skip to skip such lines)"
                        ) from None
                    self.skipped += 1
                    continue
                yield line, example.label


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
