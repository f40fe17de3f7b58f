"""The core's JSON Lines reader (mlx_core.jsonl) against the hostile-input kit: records read back
exactly, blank lines as documented, everything else one DataError line naming file:line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mlx_core import DataError
from mlx_core.hostile import (
    AWKWARD,
    BLANK_JSON_LINES,
    BYTE_DAMAGE,
    HOSTILE_JSON_LINES,
    JSON_VALUES,
    TEXT,
    assert_one_line_error,
    damaged_bytes,
    fresh_folder,
)
from mlx_core.jsonl import is_blank, numbered_records, parse_jsonl, read_jsonl

#: JSON values whose strings are Unicode text (no lone surrogates): what a valid file holds
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
#: the kit's non-blank lines but the one valid record, "{}"
NOT_RECORDS = [line for line in HOSTILE_JSON_LINES[BLANK_JSON_LINES:] if line != b"{}"]
RECORDS = st.lists(st.dictionaries(TEXT, VALUES, max_size=4), min_size=1, max_size=5)


def same(a: object, b: object) -> bool:
    """Equal as JSON (NaN equals NaN, as it reads back)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def dump(records: list, ensure_ascii: bool, crlf: bool) -> bytes:
    end = "\r\n" if crlf else "\n"
    return "".join(json.dumps(r, ensure_ascii=ensure_ascii) + end for r in records).encode("utf-8")


def read_blob(blob: bytes, **kwargs) -> list | Exception:
    with fresh_folder() as d:
        path = d / "a.jsonl"
        path.write_bytes(blob)
        try:
            return read_jsonl(path, **kwargs)
        except Exception as exc:  # noqa: BLE001 - judged by the caller: which exceptions escape
            exc.path = path  # type: ignore[attr-defined]
            return exc


# --- round trips -------------------------------------------------------------------------------
@settings(max_examples=100)
@example(records=[{"t": "a\u2028b\u2029c\x85d\x0ce\x1cf"}], ensure_ascii=False, crlf=False, blanks=[0])
@given(
    records=RECORDS,
    ensure_ascii=st.booleans(),
    crlf=st.booleans(),
    blanks=st.lists(st.integers(0, 5), max_size=3),
)
def test_records_read_back_exactly_with_blank_lines_skipped(records, ensure_ascii, crlf, blanks):
    """Any objects, any Unicode text (line separators JSON leaves raw included), LF or CRLF ends,
    blank lines (empty or JSON whitespace) anywhere: the same records, in order."""
    lines = dump(records, ensure_ascii, crlf).split(b"\n")
    for at in blanks:
        lines.insert(min(at, len(lines)), HOSTILE_JSON_LINES[at % BLANK_JSON_LINES])
    got = read_blob(b"\n".join(lines))
    assert isinstance(got, list), got
    assert same(got, records)


def test_line_numbers_count_blank_lines():
    rows = parse_jsonl('\n{"a": 1}\n  \n{"b": 2}\n', "x.jsonl")
    assert rows == [(2, {"a": 1}), (4, {"b": 2})]


def test_blank_is_json_whitespace_only():
    assert all(is_blank(line.decode()) for line in HOSTILE_JSON_LINES[:BLANK_JSON_LINES])
    for line in ("\x0c", "\u3000", "\u2028", "\x85", "\ufeff", "\x00"):
        assert not is_blank(line), repr(line)


# --- hostile lines and files ---------------------------------------------------------------------
@settings(max_examples=100)
@given(records=RECORDS, bad=st.sampled_from(NOT_RECORDS), where=st.integers(0, 5))
def test_a_hostile_line_is_named_by_file_and_line(records, bad, where):
    """Unicode blanks, JSON that is no object, broken JSON, 50,000-deep nesting, a 5,000-digit
    integer, a NUL: one DataError line naming file:line of that line, never a neighbour."""
    lines = dump(records, False, False).split(b"\n")
    k = min(where, len(records))
    lines.insert(k, bad)
    got = read_blob(b"\n".join(lines))
    assert isinstance(got, Exception), f"{bad[:20]!r} was read: {got}"
    assert_one_line_error(got, f"{got.path}:{k + 1}: ", types=DataError)


@settings(max_examples=150)
@given(records=RECORDS, how=st.sampled_from(BYTE_DAMAGE), data=st.data())
def test_damaged_files_give_objects_or_one_line_naming_the_file(records, how, data):
    got = read_blob(data.draw(damaged_bytes(dump(records, False, False), how)))
    if isinstance(got, Exception):
        assert_one_line_error(got, got.path, types=DataError)
    else:
        assert all(isinstance(r, dict) for r in got)


@settings(max_examples=100)
@given(value=JSON_VALUES, ensure_ascii=st.booleans())
def test_any_json_value_is_a_record_or_named(value, ensure_ascii):
    """Any JSON value on a line (lone surrogates escaped or raw): an object of Unicode text, or named."""
    blob = (json.dumps(value, ensure_ascii=ensure_ascii) + "\n").encode("utf-8", "surrogatepass")
    got = read_blob(blob)
    if isinstance(got, Exception):
        assert_one_line_error(got, f"{got.path}:1: ", types=DataError)
    else:
        assert isinstance(value, dict) and same(got, [value])
        json.dumps(got, ensure_ascii=False).encode("utf-8")  # no lone surrogate got through


@pytest.mark.parametrize(
    ("line", "cause"),
    [
        (b"[1, 2]", "a JSON list, not an object"),
        (b'"text"', "a JSON string, not an object"),
        (b"null", "a JSON null, not an object"),
        (b"{oops", "not valid JSON"),
        (b"[" * 50_000, "nested too deeply"),
        (b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested too deeply"),
        (b'{"n": ' + b"1" * 5000 + b"}", "an integer of over 4300 digits"),
        (b'{"t": "caf\\u00e9 \\ud800"}', "lone surrogate escape (\\ud800)"),
        (b'{"\\udfff": 1}', "lone surrogate escape (\\udfff)"),
        ("\u3000".encode(), "not valid JSON"),
        (b"\xef\xbb\xbf{}", "not valid JSON"),  # a byte-order mark is no JSON whitespace
        (b'{"a": 1}\xff', "not UTF-8 text (byte"),
    ],
    ids=lambda v: repr(v[:24]) if isinstance(v, bytes) else v,
)
def test_each_cause_is_one_line_naming_file_line_and_what_was_expected(tmp_path, line, cause):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"ok": 1}\n\n' + line + b"\n")
    with pytest.raises(DataError) as info:
        read_jsonl(path, expected="one test record per line")
    msg = assert_one_line_error(info.value, f"{path}:3: ", cause, "expected one test record per line")
    assert len(msg) < 400, msg


def test_lone_surrogates_can_be_left_to_the_caller(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"t": "a\\ud800"}\n', encoding="utf-8")
    assert read_jsonl(path, lone_surrogates="keep") == [{"t": "a\ud800"}]
    with pytest.raises(DataError, match="lone surrogate"):
        read_jsonl(path)


def test_nan_and_infinities_are_numbers_as_python_reads_them(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": NaN, "b": Infinity, "c": -Infinity}\n')
    (rec,) = read_jsonl(path)
    assert math.isnan(rec["a"]) and rec["b"] == math.inf and rec["c"] == -math.inf


def test_a_missing_file_or_a_folder_is_named(tmp_path):
    for path in (tmp_path / "none.jsonl", tmp_path):
        with pytest.raises(DataError) as info:
            read_jsonl(path)
        assert_one_line_error(info.value, f"cannot read {path}")


def test_numbered_records_give_the_line_of_each_record(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n\t\n{"a": 2}\r\n' + json.dumps({"s": AWKWARD}, ensure_ascii=False) + "\n")
    assert [n for n, _ in numbered_records(Path(path))] == [1, 3, 4]
    assert read_jsonl(path)[-1] == {"s": AWKWARD}


def test_lone_surrogate_finds_one_in_keys_values_and_nesting():
    from mlx_core.jsonl import lone_surrogate

    assert lone_surrogate({"a": ["x", {"b": "caf\u00e9 \ud800"}]}) == "\ud800"
    assert lone_surrogate({"\udfff": 1}) == "\udfff"
    assert lone_surrogate({"a": ["\U0001f642", 1, None, "\u2028"]}) is None
