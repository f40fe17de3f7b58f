"""Property-based tests of the opus_books readers: round trips through every format, hostile input.

``read_records`` reads JSONL/JSON, Parquet, ``save_to_disk`` folders and Hub-layout shard folders;
``validate`` keeps the records with non-empty source and target texts. Every example writes its
files into its own ``TemporaryDirectory`` (``tmp_path`` is shared across the examples of one test);
the module fixture points the Hugging Face caches at a temporary folder.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from mlx_translation.data import read_records, validate

from mlx_core import DataError
from mlx_core.hostile import (
    BLANK_JSON_LINES,
    BYTE_DAMAGE,
    HOSTILE_JSON_LINES,
    HOSTILE_TEXT,
    JSON_VALUES,
    TEXT,
    assert_one_line_error,
    damaged_bytes,
    offline_hf_caches,
)


@pytest.fixture(scope="module", autouse=True)
def _hf_caches_in_temp(tmp_path_factory):
    with offline_hf_caches(tmp_path_factory.mktemp("hf-home")):
        yield


# --- strategies ------------------------------------------------------------------------------
LANGS = ("en", "fr", "de", "eo")


@st.composite
def corpus(draw) -> tuple[str, str, list[dict]]:
    """(source, target, opus_books records): ids all strings, all integers or absent, maybe a third language."""
    source, target = draw(st.permutations(LANGS))[:2]
    extra = draw(st.sampled_from([None, *(lang for lang in LANGS if lang not in (source, target))]))
    ids = draw(st.sampled_from(["str", "int", "none"]))
    records = []
    for _ in range(draw(st.integers(1, 6))):
        rec = {"translation": {source: draw(TEXT), target: draw(TEXT)}}
        if extra and draw(st.booleans()):
            rec["translation"][extra] = draw(TEXT)
        if ids != "none":
            rec = {"id": draw(TEXT if ids == "str" else st.integers(-(2**63), 2**63 - 1)), **rec}
        records.append(rec)
    return source, target, records


def expected(records: list[dict], source: str, target: str) -> list[dict]:
    return [
        {"id": str(r.get("id", i)), "translation": {source: r["translation"][source].strip(),
                                                     target: r["translation"][target].strip()}}
        for i, r in enumerate(records)
    ]  # fmt: skip


def dump_jsonl(records: list, ensure_ascii: bool, crlf: bool = False, blank: bool = False) -> bytes:
    end = "\r\n" if crlf else "\n"
    lines = [json.dumps(r, ensure_ascii=ensure_ascii) for r in records]
    text = ("\n \t\n" if blank else end).join(lines) + end
    return text.encode("utf-8", "surrogatepass")  # a raw lone surrogate: bytes that are not UTF-8


def write(folder: Path, fmt: str, records: list[dict], source: str, target: str, draw_bool) -> Path:
    """``records`` written in format ``fmt`` under ``folder``; the path to give ``read_records``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if fmt in ("jsonl", "json"):
        path = folder / f"books.{fmt}"
        path.write_bytes(dump_jsonl(records, draw_bool(), crlf=draw_bool(), blank=draw_bool()))
        return path
    if fmt == "parquet":
        path = folder / "books.parquet"
        pq.write_table(pa.Table.from_pylist(records), path)
        return path
    if fmt in ("disk", "disk-dict"):
        from datasets import Dataset, DatasetDict

        ds = Dataset.from_list(records)
        path = folder / "books"
        (DatasetDict({"train": ds, "test": ds}) if fmt == "disk-dict" else ds).save_to_disk(str(path))
        return path
    # the opus_books repository layout: <src>-<tgt>/train-*.parquet (or .jsonl) shards, sorted by name
    path = folder / "opus_books"
    shards = path / f"{source}-{target}" if draw_bool() else path
    shards.mkdir(parents=True, exist_ok=True)
    (path / "README.md").write_text("opus_books\n")
    cut = len(records) // 2
    for n, part in enumerate((records[:cut], records[cut:])):
        if not part:
            continue
        name = shards / f"train-{n:05d}-of-00002"
        if fmt == "hub-parquet":
            pq.write_table(pa.Table.from_pylist(part), f"{name}.parquet")
        else:
            Path(f"{name}.jsonl").write_bytes(dump_jsonl(part, draw_bool()))
    return path


def assert_well_formed(records: list[dict], source: str, target: str) -> None:
    """What ``build`` relies on: string ids, exactly two stripped non-empty texts, Arrow can hold them."""
    from datasets import Dataset

    for rec in records:
        assert set(rec) == {"id", "translation"} and isinstance(rec["id"], str)
        assert set(rec["translation"]) == {source, target}
        for text in rec["translation"].values():
            assert isinstance(text, str) and text and text == text.strip()
    Dataset.from_list(records)  # the next step of the stage: must not raise (e.g. on a lone surrogate)


def load(path: Path, source: str, target: str, on_invalid: str = "error"):
    """``validate(read_records(...))``, or the exception it raised (any type: the caller judges it)."""
    try:
        return validate(read_records(path, source, target), source, target, on_invalid, str(path))
    except Exception as exc:  # noqa: BLE001 - the property is about which exceptions escape
        return exc


# --- round trips -------------------------------------------------------------------------------
@settings(max_examples=150)
@given(
    data=corpus(),
    fmt=st.sampled_from(["jsonl", "json", "parquet", "disk", "disk-dict", "hub-parquet", "hub-jsonl"]),
    flags=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_valid_records_read_back_unchanged_in_every_format(data, fmt, flags):
    """Any valid records (any Unicode, surrounding whitespace, integer or string ids, a third
    language), written in each supported layout, come back as exactly the same texts, stripped."""
    source, target, records = data
    bools = iter(flags)
    with tempfile.TemporaryDirectory() as d:
        path = write(Path(d), fmt, records, source, target, lambda: next(bools))
        got = load(path, source, target)
    assert not isinstance(got, Exception), f"{type(got).__name__}: {got}"
    assert got.records == expected(records, source, target)
    assert sum(got.skipped.values()) == 0
    assert_well_formed(got.records, source, target)


# --- hostile records -----------------------------------------------------------------------------
@st.composite
def hostile_record(draw, source: str, target: str):
    """A valid record with fields set to any JSON value, removed or added; or not an object at all."""
    if draw(st.integers(0, 5)) == 0:
        return draw(JSON_VALUES)
    rec = {"id": draw(TEXT), "translation": {source: draw(TEXT), target: draw(TEXT)}}
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "translation"]))
        key = draw(st.sampled_from(["id", "translation", source, target]) | HOSTILE_TEXT)
        op = draw(st.sampled_from(["set", "delete"]))
        obj = rec if where == "top" or not isinstance(rec.get("translation"), dict) else rec["translation"]
        if op == "set":
            obj[key] = draw(JSON_VALUES)
        else:
            obj.pop(key, None)
    return rec


@settings(max_examples=300)
@example(pairs=[], bad={"id": "1", "translation": {"en": "a\ud800", "fr": "b"}}, where=0, on_invalid="error",
         ensure_ascii=True)  # fmt: skip
@example(pairs=[("a", "b")], bad={"id": "\udfff", "translation": {"en": "a", "fr": "b"}}, where=1,
         on_invalid="skip", ensure_ascii=True)  # fmt: skip
@given(
    pairs=st.lists(st.tuples(TEXT, TEXT), max_size=4),
    bad=hostile_record("en", "fr"),
    where=st.integers(0, 4),
    on_invalid=st.sampled_from(["error", "skip"]),
    ensure_ascii=st.booleans(),
)
def test_hostile_record_is_kept_faithfully_skipped_or_named(pairs, bad, where, on_invalid, ensure_ascii):
    """One hostile record among valid ones: kept only as exactly its own stripped texts, skipped and
    counted, or a one-line DataError naming the file and that record (never a neighbour)."""
    source, target = "en", "fr"
    good = [{"id": f"good{i}", "translation": {source: a, target: b}} for i, (a, b) in enumerate(pairs)]
    k = min(where, len(good))
    rows = [*good[:k], bad, *good[k:]]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "books.jsonl"
        path.write_bytes(dump_jsonl(rows, ensure_ascii))
        got = load(path, source, target, on_invalid)
    if isinstance(got, Exception):
        msg = assert_one_line_error(got, str(path))
        if m := re.match(r"record (\d+) \(id ", msg):  # about one record: the hostile one (0-based)
            assert m[1] == str(k), msg
            assert on_invalid == "error" or "'translation' mapping" in msg, msg
        elif m := re.search(r"books\.jsonl:(\d+): a JSON \w+, not an object", msg):  # the JSON Lines reader's
            assert m[1] == str(k + 1) and not isinstance(bad, dict), msg  # its line (1-based), never a neighbour
        else:  # a file-level error: only when the file itself is not UTF-8 (a raw lone surrogate)
            assert not ensure_ascii and "UTF-8" in msg, msg
        return
    assert_well_formed(got.records, source, target)
    assert len(got.records) + sum(got.skipped.values()) == len(rows)  # every row kept or counted
    want = expected(good, source, target)
    if len(got.records) == len(good):  # the hostile record was skipped, its neighbours untouched
        assert got.records == want and on_invalid == "skip"
    else:  # kept: then it held two real texts, kept exactly (stripped), its id as given
        assert got.records[:k] + got.records[k + 1 :] == want
        assert got.records[k] == {
            "id": str(bad.get("id", k)),
            "translation": {lang: bad["translation"][lang].strip() for lang in (source, target)},
        }


# --- hostile files -------------------------------------------------------------------------------
@st.composite
def corrupted_jsonl(draw) -> tuple[str, bytes, bool]:
    """(suffix, bytes, still_valid) of a valid JSON Lines file spoiled the ways files get spoiled."""
    suffix = draw(st.sampled_from([".jsonl", ".json"]))
    pairs = draw(st.lists(st.tuples(TEXT, TEXT), max_size=4))
    records = [{"id": "x", "translation": {"en": "a", "fr": "b"}}]
    records += [{"id": str(i), "translation": {"en": en, "fr": fr}} for i, (en, fr) in enumerate(pairs)]
    blob = dump_jsonl(records, draw(st.booleans()))
    op = draw(st.sampled_from([*BYTE_DAMAGE, "line", "empty", "huge"]))
    if op in BYTE_DAMAGE:
        return suffix, draw(damaged_bytes(blob, op)), False
    if op == "empty":
        return suffix, draw(st.sampled_from([b"", b"\n", b" \r\n\t", b"\xef\xbb\xbf", b"[]", b"{}"])), False
    if op == "huge":  # a 1 MB sentence pair: big but valid
        huge = {"id": "huge", "translation": {"en": "the cat " * 65_000, "fr": "le chat " * 65_000}}
        return suffix, blob + json.dumps(huge).encode() + b"\n", True
    lines = blob.split(b"\n")
    n = draw(st.integers(0, len(lines)))
    line = draw(st.sampled_from([*HOSTILE_JSON_LINES, b'{"translation": []}']))
    # blank in JSON's sense (mlx_core.jsonl skips them); other Unicode blanks are lines to name
    still_valid = line in HOSTILE_JSON_LINES[:BLANK_JSON_LINES]
    return suffix, b"\n".join([*lines[:n], line, *lines[n:]]), still_valid


@settings(max_examples=300)
@example((".jsonl", b'{"id": "x", "translation": {"en": "a", "fr": "b"}}\n' + b"[" * 50_000 + b"\n", False), "skip")
@example((".json", b'{"id": ' + b"1" * 5000 + b', "translation": {"en": "a", "fr": "b"}}\n', False), "error")
@given(corrupted_jsonl(), st.sampled_from(["error", "skip"]))
def test_corrupted_jsonl_gives_records_or_one_line_error_naming_the_file(case, on_invalid):
    """Truncated, garbled, non-UTF-8, empty, huge files, deep nesting, 5000-digit numbers, garbage
    lines: well-formed records or a one-line DataError naming the file; blank lines are no error."""
    suffix, blob, still_valid = case
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"books{suffix}"
        path.write_bytes(blob)
        got = load(path, "en", "fr", on_invalid)
    if isinstance(got, Exception):
        assert not still_valid, f"a valid file was rejected: {got}"
        assert_one_line_error(got, str(path))
    else:
        assert_well_formed(got.records, "en", "fr")
        if still_valid:
            assert got.records[0] == {"id": "x", "translation": {"en": "a", "fr": "b"}}


@st.composite
def damaged_binary_dataset(draw) -> tuple[str, int, int, bytes]:
    """(layout, which file, where, what): one file of a Parquet file or save_to_disk folder spoiled."""
    layout = draw(st.sampled_from(["parquet", "disk", "disk-dict", "hub-parquet"]))
    return (
        layout,
        draw(st.integers(0, 10)),
        draw(st.integers(0, 1 << 20)),
        draw(st.sampled_from([b"", b"\x00", b"\xff\xff\xff\xff", b"{", b"PAR1"]) | st.binary(min_size=1, max_size=8)),
    )


@settings(max_examples=250)
@example(("disk", 0, 772, b"\xff\xff\xff\xff"), "overwrite")  # once: the process aborted in Arrow (SIGABRT)
@given(damaged_binary_dataset(), st.sampled_from(["truncate", "overwrite", "delete", "replace"]))
def test_damaged_parquet_and_disk_folders_give_one_line_errors(case, how):
    """A Parquet file or a save_to_disk folder with one file truncated, overwritten in place, deleted
    or replaced: well-formed records or a one-line DataError naming the file or folder; never a raw
    pyarrow/datasets exception, never a crash of the process."""
    layout, which, at, junk = case
    records = [{"id": str(i), "translation": {"en": f"the cat {i} é", "fr": f"le chat {i} 中"}} for i in range(30)]
    with tempfile.TemporaryDirectory() as d:
        path = write(Path(d), layout, records, "en", "fr", lambda: True)
        files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file() and p.suffix != ".md")
        victim = files[which % len(files)]
        blob = victim.read_bytes()
        at %= len(blob) + 1
        if how == "delete" and victim != path:
            victim.unlink()
        elif how == "truncate":
            victim.write_bytes(blob[:at])
        elif how == "replace":
            victim.write_bytes(junk)
        else:  # bytes overwritten in place: lengths and offsets inside the file now lie
            victim.write_bytes(blob[:at] + junk + blob[at + len(junk) :])
        got = load(path, "en", "fr")
        if isinstance(got, Exception):
            assert_one_line_error(got, str(path))
        else:
            assert_well_formed(got.records, "en", "fr")
            assert len(got.records) <= len(records)


def test_the_error_judge_can_fail():
    """The properties above judge what escapes; a raw exception or a two-line message fails them."""
    with pytest.raises(AssertionError):
        assert_one_line_error(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))
    with pytest.raises(AssertionError):
        assert_one_line_error(DataError("two\nlines"))
    with pytest.raises((AssertionError, UnicodeEncodeError)):  # Arrow cannot hold a lone surrogate
        assert_well_formed([{"id": "1", "translation": {"en": "a\ud800", "fr": "b"}}], "en", "fr")
