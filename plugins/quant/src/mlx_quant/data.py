"""Calibration and evaluation text: a local .txt / .jsonl file, or a generated corpus.

The generated corpus is written as a .txt file (one document per line) in the run and read back
by the same reader a user's file goes through.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from mlx_core import DataError

SUBJECTS = ["the cat", "a small dog", "the old man", "my sister", "the teacher", "a farmer", "the river", "our team",
            "the engine", "a young bird", "the city", "this model"]  # fmt: skip
VERBS = ["sees", "likes", "carries", "follows", "builds", "paints", "finds", "moves", "watches", "cleans", "opens"]
OBJECTS = ["a red ball", "the green door", "two apples", "the long road", "a quiet house", "the blue sky",
           "some fresh bread", "the heavy box", "a tall tree", "the morning light"]  # fmt: skip
TAILS = ["in the morning", "after the rain", "near the market", "every day", "with great care", "before dinner",
         "under the bridge", "at night"]  # fmt: skip


def generate_corpus(n: int, seed: int) -> list[str]:
    """``n`` documents of simple, repetitive English (a learnable, deterministic toy corpus)."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        sentences = []
        for _ in range(rng.randint(2, 4)):
            s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
            if rng.random() < 0.6:
                s += f" {rng.choice(TAILS)}"
            sentences.append(s[0].upper() + s[1:] + ".")
        docs.append(" ".join(sentences))
    return docs


def read_texts(path: str | Path, text_field: str = "text") -> list[str]:
    """Documents from a .txt (one per non-empty line) or .jsonl (``text_field`` of each object) file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data.path {path} does not exist or is not a file (expected a .txt or .jsonl file)")
    if path.suffix not in (".txt", ".jsonl"):
        raise DataError(f"data.path {path} has suffix {path.suffix!r}; expected .txt or .jsonl")
    try:
        # only "\n" ends a line (after the universal-newline read): str.splitlines would also cut at
        # U+2028, U+0085, form feeds..., which JSON strings and documents may hold
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise DataError(f"data.path {path} is not UTF-8 text (byte {exc.start})") from None
    docs: list[str] = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if path.suffix == ".txt":
            docs.append(line.strip())
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{i}: not a JSON object ({exc.msg})") from None
        except (ValueError, RecursionError) as exc:  # json's limits: 4300-digit integers, nesting depth
            what = "nested too deeply" if isinstance(exc, RecursionError) else "holds an integer over 4300 digits"
            raise DataError(f"{path}:{i}: a JSON object this reader cannot load ({what})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get(text_field), str):
            raise DataError(f"{path}:{i}: expected an object with a string field {text_field!r} (data.text_field)")
        text = obj[text_field].strip()
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a "\ud800" escape: valid JSON, but no text to tokenize
            raise DataError(
                f"{path}:{i}: field {text_field!r} holds an unpaired surrogate (\\u{ord(text[exc.start]):04x});"
                " expected valid Unicode text"
            ) from None
        if text:
            docs.append(text)
    if len(docs) < 2:
        raise DataError(
            f"data.path {path} holds {len(docs)} document(s); needs at least 2 (calibration and evaluation)"
        )
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
