"""Calibration and evaluation text: a local .txt / .jsonl file, or a generated corpus.

The generated corpus is written as a .txt file (one document per line) in the run and read back
by the same reader a user's file goes through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlx_core import DataError
from mlx_core.jsonl import numbered_records

from .sample import generate_corpus


def read_texts(path: str | Path, text_field: str = "text") -> list[str]:
    """Documents from a .txt (one per non-empty line) or .jsonl (``text_field`` of each object) file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data.path {path} does not exist or is not a file (expected a .txt or .jsonl file)")
    if path.suffix not in (".txt", ".jsonl"):
        raise DataError(f"data.path {path} has suffix {path.suffix!r}; expected .txt or .jsonl")
    docs = _jsonl_texts(path, text_field) if path.suffix == ".jsonl" else _txt_lines(path)
    if len(docs) < 2:
        raise DataError(
            f"data.path {path} holds {len(docs)} document(s); needs at least 2 (calibration and evaluation)"
        )
    return docs


def _txt_lines(path: Path) -> list[str]:
    """The stripped non-blank lines of a text file."""
    try:
        # only "\n" ends a line (after the universal-newline read): str.splitlines would also cut at
        # U+2028, U+0085, form feeds..., which documents may hold
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise DataError(f"data.path {path} is not UTF-8 text (byte {exc.start})") from None
    return [line.strip() for line in lines if line.strip()]


def _jsonl_texts(path: Path, text_field: str) -> list[str]:
    """The stripped, non-blank ``text_field`` of every record, read by the core's JSON Lines reader
    (``mlx_core.jsonl``: errors name file:line, lone surrogates included)."""
    expected = f"an object with a string field {text_field!r} (data.text_field)"
    docs = []
    for n, obj in numbered_records(path, expected=expected):
        if not isinstance(obj.get(text_field), str):
            raise DataError(f"{path}:{n}: expected {expected}")
        if obj[text_field].strip():
            docs.append(obj[text_field].strip())
    return docs


@dataclass
class TextData:
    """What the data stage hands on: documents split into training/calibration and evaluation."""

    path: Path
    train: list[str]
    eval: list[str]
    generated: bool


def build_text_data(ctx) -> TextData:
    cfg = ctx.config.data
    generated = cfg.path is None
    if generated:
        path = ctx.path("data", "corpus.txt")
        if not (ctx.resumed and path.is_file()):
            docs = generate_corpus(cfg.documents, ctx.seed)
            with ctx.atomic_path("data", "corpus.txt") as tmp:
                tmp.write_text("".join(d + "\n" for d in docs), encoding="utf-8")
            ctx.add_artifact(path, kind="dataset", documents=len(docs), generated=True)
        else:
            ctx.log(f"reusing the generated corpus {path.relative_to(ctx.run_dir)}")
    else:
        path = Path(cfg.path).expanduser()
    docs = read_texts(path, cfg.text_field)
    n_eval = max(1, round(len(docs) * cfg.eval_fraction))
    n_eval = min(n_eval, len(docs) - 1)
    data = TextData(path=path, train=docs[:-n_eval], eval=docs[-n_eval:], generated=generated)
    ctx.log_metrics({"train_documents": len(data.train), "eval_documents": len(data.eval)})
    ctx.record("data", {"path": str(path), "generated": generated, "train": len(data.train), "eval": len(data.eval)})
    return data
