"""The VQA record reader: ``train``/``val`` files of a folder, checked record by record.

A ``.jsonl`` file goes through the core's JSON Lines reader (``mlx_core.jsonl``), a ``.json`` file
holds a list of records or TextVQA's ``{"data": [...]}``. Each record is checked against the
schema (one-line ``DataError`` naming the record and field), then the file is loaded through
Hugging Face ``datasets`` (Arrow), and what Arrow gives back is compared with what the file holds.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from mlx_core import DataError
from mlx_core.jsonl import lone_surrogate, parse_jsonl

#: what each line of a .jsonl file must be (ends the core reader's messages)
EXPECTED = "one VQA record (an object with image, question and answers) per line"


def split_file(folder: Path, stem: str) -> Path | None:
    """``folder/<stem>.jsonl``, else ``folder/<stem>.json``, else None."""
    for ext in (".jsonl", ".json"):
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    return None


def _json_problem(exc: Exception) -> str:
    # json.loads also raises a bare ValueError (an integer of over 4300 digits) and RecursionError
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    return (str(exc).splitlines() or [type(exc).__name__])[0][:100]


def _raw_records(path: Path, text: str) -> list[Any]:
    """The file's records parsed with the standard library (used to name the record that breaks a load)."""
    if path.suffix == ".jsonl":
        # the core's JSON Lines reader: lines end at "\n" only, JSON-whitespace lines are blank (as
        # for Arrow), every other line an object; errors name file:line
        return [rec for _, rec in parse_jsonl(text, path, expected=EXPECTED)]
    try:
        top = json.loads(text)
    except (ValueError, RecursionError) as exc:
        at = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise DataError(f"{path}: not valid JSON ({_json_problem(exc)}{at})") from None
    if isinstance(top, dict) and isinstance(top.get("data"), list):
        return top["data"]  # TextVQA's {"dataset_name": ..., "data": [...]}
    if isinstance(top, list):
        return top
    raise DataError(f'{path}: expected a list of records or {{"data": [...]}}, got a JSON {type(top).__name__}')


def _type_name(v: Any) -> str:
    return {str: "string", int: "number", float: "number", bool: "boolean", list: "list", dict: "object"}.get(
        type(v), "null" if v is None else type(v).__name__
    )


#: the fields the reader uses, checked to read back through Arrow exactly as the file has them
USED_FIELDS = ("question", "answers", "answer", "image", "image_path", "image_id")


def check_record(rec: Any, where: str) -> None:
    """Raise a one-line ``DataError`` naming the field of ``rec`` that breaks the VQA schema."""
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected a JSON object, got {_type_name(rec)} {rec!r:.60}")
    for key in USED_FIELDS:
        values = rec.get(key) if isinstance(rec.get(key), list) else [rec.get(key)]
        bad = next((v for v in values if isinstance(v, str) and lone_surrogate(v)), None)
        if bad is not None:
            raise DataError(f"{where}: {key!r} holds a lone surrogate escape, not Unicode text: {bad!r:.60}")
    q = rec.get("question")
    if not isinstance(q, str) or not q.strip():
        raise DataError(f"{where}: 'question' must be a non-empty string, got {_type_name(q)} {q!r:.60}")
    img = next((rec[k] for k in ("image", "image_path", "image_id") if rec.get(k) is not None), None)
    if img is None:
        raise DataError(f"{where}: no 'image', 'image_path' or 'image_id' field")
    if not isinstance(img, (str, int)) or isinstance(img, bool) or not str(img).strip():
        raise DataError(f"{where}: the image field must be a file name string, got {_type_name(img)} {img!r:.60}")
    answers = rec.get("answers")
    if answers is not None:
        if not isinstance(answers, list) or not answers:
            raise DataError(f"{where}: 'answers' must be a non-empty list of strings, got {_type_name(answers)} "
                            f"{answers!r:.60}")  # fmt: skip
        bad = [a for a in answers if not isinstance(a, (str, int, float)) or isinstance(a, bool)]
        if bad:
            raise DataError(f"{where}: 'answers' must hold strings, found {_type_name(bad[0])} {bad[0]!r:.60}")
    elif (
        not isinstance(rec.get("answer"), (str, int, float))
        or isinstance(rec["answer"], bool)
        or not str(rec["answer"]).strip()
    ):
        raise DataError(f"{where}: needs an 'answers' list or an 'answer' string, got {rec.get('answer')!r:.60}")


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of one JSON/JSONL file, loaded through Hugging Face ``datasets`` and checked one by one."""
    try:
        text = path.read_text(encoding="utf-8")  # what Arrow reads, whatever the locale
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if not text.strip():
        raise DataError(f"{path}: empty data set (no records)")
    raw = _raw_records(path, text)
    if not raw:
        raise DataError(f"{path}: empty data set (no records)")
    for i, rec in enumerate(raw, start=1):  # precise one-line errors before the Arrow load
        check_record(rec, f"{path.name} record {i}")
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    kwargs = {"field": "data"} if path.suffix == ".json" and text.lstrip().startswith("{") else {}
    with tempfile.TemporaryDirectory(prefix="mlx-mm-hf-") as cache:
        try:
            ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=cache, **kwargs)
        except Exception as exc:  # noqa: BLE001 - datasets raises many kinds for malformed files
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"{path}: records do not load as one table, e.g. a field with mixed types "
                            f"({msg[:160]})") from None  # fmt: skip
        records = ds.to_list()
    if len(records) != len(raw):
        raise DataError(f"{path}: datasets read {len(records)} records, expected {len(raw)}")
    for i, (got, want) in enumerate(zip(records, raw, strict=True), start=1):
        # Arrow gives a column one type: [1] beside [2.5] reads back as [1.0], a big integer as a float
        for key in USED_FIELDS:
            if repr(got.get(key)) != repr(want.get(key)):
                # the culprit is the first record holding numbers there (the schema's values are
                # strings), not necessarily the record whose value Arrow changed
                j = next((n for n, rec in enumerate(raw, start=1) if _holds_numbers(rec.get(key))), i)
                raise DataError(f"{path.name} record {j}: {key!r} holds {raw[j - 1].get(key)!r:.40}; datasets gives "
                                f"a field one type for all records, so values change ({want.get(key)!r:.30} read "
                                f"back as {got.get(key)!r:.30}); write it as in the other records (e.g. answers "
                                "as strings)")  # fmt: skip
    return records


def _holds_numbers(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
