"""One JSON Lines reader for every plugin: records of a ``.jsonl`` file, or one line naming why not.

The format (https://jsonlines.org): UTF-8 text, one JSON value per line, lines ended by ``"\\n"``
(a ``"\\r\\n"`` ending is fine: the ``"\\r"`` is JSON whitespace). What this reader holds to:

- **Lines end at "\\n" only.** ``str.splitlines`` would also cut at U+2028, U+2029, U+0085, form
  feeds and other separators that JSON allows raw inside strings; they survive here.
- **Blank lines.** A line that is empty or holds only JSON whitespace (space, tab, carriage return)
  is skipped: editors and ``cat a.jsonl b.jsonl`` leave them. Any other line is a record, so a line
  of other Unicode blanks (U+3000, U+2028, a form feed, ...) is *not* blank: it is an error, as it
  is for a JSON parser and for Arrow's JSON reader.
- **Records are JSON objects** (``{...}``), each returned as a ``dict``; a line holding another JSON
  value (a list, a string, ``null``) is an error.
- **Errors** are one-line ``DataError`` messages naming ``file:line`` and the cause: not UTF-8, not
  valid JSON, not an object, nested too deeply (``RecursionError``), an integer of more than 4300
  digits (Python's limit), or a string holding a lone surrogate escape (``"\\ud800"``: valid JSON,
  but no Unicode text; Arrow and tokenizers cannot hold it). ``lone_surrogates="keep"`` leaves
  those to the caller (a plugin that skips such records, one by one, under its own option).

Pure standard library: listing plugins never imports it, and a reader imports it at no cost.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from .errors import DataError

__all__ = ["JSON_WHITESPACE", "is_blank", "lone_surrogate", "numbered_records", "parse_jsonl", "read_jsonl"]

#: the whitespace JSON allows between tokens ("\n" ends the line); a line of only these is blank
JSON_WHITESPACE = " \t\r"


def is_blank(line: str) -> bool:
    """Whether a line (without its "\\n") is blank: empty, or only JSON whitespace."""
    return not line.strip(JSON_WHITESPACE)


def read_jsonl(
    path: str | os.PathLike[str],
    *,
    expected: str = "one JSON object per line",
    lone_surrogates: Literal["error", "keep"] = "error",
) -> list[dict[str, Any]]:
    """The records (objects) of the JSON Lines file ``path``, in order, blank lines skipped.

    Raises a one-line ``DataError`` naming ``path`` (and the line) for a file that cannot be read,
    is not UTF-8 or holds a line that is not a record; ``expected`` ends the message (what a record
    of this file should be, e.g. ``"one opus_books record per line"``)."""
    return [obj for _, obj in numbered_records(path, expected=expected, lone_surrogates=lone_surrogates)]


def numbered_records(
    path: str | os.PathLike[str],
    *,
    expected: str = "one JSON object per line",
    lone_surrogates: Literal["error", "keep"] = "error",
) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` pairs of ``path``: for messages that name a record's line."""
    p = Path(path)
    try:
        blob = p.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {p}: {exc.strerror or type(exc).__name__}") from None
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = blob.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{p}:{line}: not UTF-8 text (byte {exc.start}); expected {expected}") from None
    return parse_jsonl(text, p, expected=expected, lone_surrogates=lone_surrogates)


def parse_jsonl(
    text: str,
    where: str | os.PathLike[str],
    *,
    expected: str = "one JSON object per line",
    lone_surrogates: Literal["error", "keep"] = "error",
) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` pairs of JSON Lines ``text``; ``where`` names it in errors."""
    out = []
    for n, line in enumerate(text.split("\n"), start=1):
        if is_blank(line):
            continue
        at = f"{where}:{n}"
        obj = _load(line, at, expected)
        if not isinstance(obj, dict):
            raise DataError(f"{at}: a JSON {_json_type(obj)}, not an object; expected {expected}")
        if lone_surrogates == "error":
            bad = lone_surrogate(obj)
            if bad is not None:
                raise DataError(
                    f"{at}: a string holds a lone surrogate escape (\\u{ord(bad):04x}), not Unicode text; expected {expected}"
                )
        out.append((n, obj))
    return out


def _load(line: str, at: str, expected: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{at}: not valid JSON ({exc.msg} at column {exc.colno}); expected {expected}") from None
    except RecursionError:
        raise DataError(f"{at}: JSON nested too deeply to read; expected {expected}") from None
    except ValueError:  # int() refuses more than sys.get_int_max_str_digits() (4300) digits
        raise DataError(f"{at}: an integer of over 4300 digits, more than Python reads; expected {expected}") from None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "list"}.get(type(value), type(value).__name__)


def lone_surrogate(value: Any) -> str | None:
    """The first lone surrogate in any string (key or value) of the JSON value ``value``, or None:
    a ``"\\ud800"`` escape is valid JSON but no Unicode text (Arrow and tokenizers cannot hold it)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as exc:
                return v[exc.start]
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None
