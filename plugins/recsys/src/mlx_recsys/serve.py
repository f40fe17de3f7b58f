"""The click predictor: what ``mlx serve`` serves and ``mlx predict`` runs (stage table ``serve``).

Criteo-format lines in (40 tab-separated columns, or 39 without the label as in Criteo's test
file), click probabilities out, from the exported TorchScript scorer (int8 row-wise tables by
default, ``--format float`` for the float one) loaded with ``torch.jit`` and fbgemm's kernels,
never the training code; the scorer and its meta.json are checked against run.json first.
"""

from __future__ import annotations

import json

from pydantic import Field

from mlx_core import DataError, Predictor, Request, Response, RunContext, RunError

from .config import N_COLUMNS_UNLABELED
from .data import BadLine, Example, Schema, parse_line, to_batch

FORMATS = {"int8": ("export", "model_int8.pt"), "float": ("export", "model_float.pt")}
EXAMPLE_LINE = "\t".join(["1", *["3"] * 13, *["a1"] * 26])


class ScoreRequest(Request):
    lines: list[str] = Field(
        min_length=1,
        description="Criteo-format TSV lines: label + 13 integer + 26 categorical columns (label optional)",
    )


class ScoreResponse(Response):
    probabilities: list[float] = Field(description="the click probability of each line, in order")
    format: str = Field(description="the exported scorer that computed them (int8 or float)")


def labeled(line: str) -> tuple[str, bool]:
    """The line with a label column (``0`` put in front of a 39-column test line), and whether it had one."""
    line = line.rstrip("\r\n")
    if line.count("\t") == N_COLUMNS_UNLABELED - 1:
        return "0\t" + line, False
    return line, True


def serve(ctx: RunContext, format: str | None = None) -> Predictor:
    from .export import META_FILE, load_scorer

    fmt = format or "int8"
    if fmt not in FORMATS:
        raise RunError(f"recsys serves the exports {', '.join(FORMATS)}; there is no format {fmt!r}")
    model_path, meta_path = ctx.run_dir.joinpath(*FORMATS[fmt]), ctx.run_dir.joinpath(*META_FILE)
    if not model_path.exists() or not meta_path.exists():
        raise RunError(f"{ctx.run_dir} has no export ({model_path.name}); run `mlx run recsys export` first")
    schema = Schema(**json.loads(ctx.verify_artifact(meta_path).read_text())["schema"])
    module = load_scorer(ctx.verify_artifact(model_path))
    batch_size = ctx.config.predict.batch_size

    def prepare(req: ScoreRequest) -> list[Example]:
        examples = []
        for i, line in enumerate(req.lines, start=1):
            try:
                examples.append(parse_line(labeled(line)[0], schema))
            except BadLine as bad:
                raise DataError(f"line {i}: {bad}") from None
        return examples

    def predict(items: list[list[Example]]) -> list[ScoreResponse]:
        import torch

        out = []
        for examples in items:
            probs: list[float] = []
            for i in range(0, len(examples), batch_size):
                dense, kjt, _ = to_batch(examples[i : i + batch_size], schema.features)
                with torch.no_grad():
                    probs += module(dense, kjt.values(), kjt.lengths()).tolist()
            out.append(ScoreResponse(probabilities=probs, format=fmt))
        return out

    return Predictor(
        request=ScoreRequest,
        response=ScoreResponse,
        prepare=prepare,
        predict=predict,
        batches=False,
        title=f"click-through prediction (DLRM, {fmt} TorchScript): Criteo-format lines, one per line",
        examples=[{"lines": [EXAMPLE_LINE]}],
        facts={"format": fmt, "runtime": "torch.jit + fbgemm_gpu", "features": list(schema.features)},
    )
