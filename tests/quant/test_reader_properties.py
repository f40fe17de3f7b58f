"""Property-based tests of the text corpus reader (.txt / .jsonl) and the generated corpus.

Whatever a file holds, ``read_texts`` returns at least two non-empty, stripped, UTF-8-encodable
documents or raises a one-line ``DataError`` naming the file; drawn texts survive a round trip.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from mlx_quant.data import read_texts
from mlx_quant.sample import generate_corpus

from mlx_core import ConfigError, DataError
from mlx_core.hostile import assert_one_line_error

SETTINGS = settings(max_examples=200)  # the rest from the "mlx" hypothesis profile
SUFFIXES = [".txt", ".jsonl", ".json", ".csv", "", ".TXT", ".txt.gz"]


def read(name: str, blob: bytes, text_field: str = "text") -> list[str]:
    """``read_texts`` on a fresh file holding ``blob`` (a temporary folder per example)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(blob)
        try:
            return read_texts(path, text_field)
        except (DataError, ConfigError) as err:
            assert_one_line_error(err, path)
            raise


# --- hostile files ----------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def jsonl_line(draw, good: bool = False) -> bytes:
    kind = "good" if good else draw(st.sampled_from(["good", "wrong_type", "missing", "any", "garbage", "deep", "long_number",
                                 "surrogate", "separator", "blank"]))  # fmt: skip
    if kind == "good":
        obj = {"text": draw(st.text(max_size=40)), "id": draw(st.integers())}
    elif kind == "wrong_type":
        obj = {"text": draw(json_values.filter(lambda v: not isinstance(v, str)))}
    elif kind == "missing":
        obj = draw(st.dictionaries(st.text(max_size=6).filter(lambda k: k != "text"), json_values, max_size=3))
    elif kind == "any":
        obj = draw(json_values)
    elif kind == "garbage":
        return draw(st.binary(max_size=60)).replace(b"\n", b" ")
    elif kind == "deep":
        # nested deeper than Python's recursion limit, in a field next to a valid text
        depth = draw(st.sampled_from([10, 5_000, 100_000]))
        return b'{"text": "ok", "meta": ' + b"[" * depth + b"]" * depth + b"}"
    elif kind == "long_number":
        return b'{"text": "ok", "n": ' + b"7" * draw(st.sampled_from([100, 4301, 50_000])) + b"}"
    elif kind == "surrogate":
        # valid JSON that decodes to an unpaired surrogate: no UTF-8 encoding exists for it
        return b'{"text": "caf\\u00e9 \\ud800 ' + draw(st.sampled_from([b"", b"\\udc00", b"x"])) + b'"}'
    elif kind == "separator":
        # JSON allows these raw inside strings; they are not line ends of a JSON Lines file
        sep = draw(st.sampled_from(["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]))
        return json.dumps({"text": f"a{sep}b"}, ensure_ascii=False).encode("utf-8")
    else:
        return draw(st.sampled_from([b"", b"   ", b"\t", b"\r"]))
    return json.dumps(obj, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


@st.composite
def hostile_files(draw) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["jsonl", "text", "jsonl", "bytes", "huge", "empty"]))
    usual = {"jsonl": ".jsonl", "text": ".txt"}.get(kind, ".txt")
    suffix = draw(st.one_of(st.just(usual), st.just(usual), st.sampled_from(SUFFIXES)))
    if kind == "jsonl":  # good lines and at most two odd ones, so that some files get through
        lines = draw(st.lists(jsonl_line(good=True), max_size=5))
        for _ in range(draw(st.integers(0, 2))):
            lines.insert(draw(st.integers(0, len(lines))), draw(jsonl_line()))
        blob = b"\n".join(lines)
    elif kind == "text":
        blob = "\n".join(draw(st.lists(st.text(max_size=60), max_size=6))).encode("utf-8")
    elif kind == "bytes":
        blob = draw(st.binary(max_size=500))
    elif kind == "huge":
        blob = b"x" * 1_000_000 + b"\nsecond line\n" + draw(st.sampled_from([b"", b"\xff\xfe", b"\x00"]))
    else:
        blob = b""
    if draw(st.integers(0, 5)) == 0:
        blob = b"\xef\xbb\xbf" + blob  # a UTF-8 byte-order mark
    return "corpus" + suffix, blob


@SETTINGS
@given(f=hostile_files())
@example(f=("c.jsonl", b'{"text": "one"}\n{"text": "two \\ud800"}\n'))
@example(f=("c.jsonl", b'{"text": "one"}\n{"text": "two", "m": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"))
@example(f=("c.jsonl", b'{"text": "one"}\n{"text": "two", "n": ' + b"7" * 5000 + b"}\n"))
@example(f=("c.jsonl", '{"text": "one"}\n{"text": "two\u2028lines"}\n'.encode()))
def test_read_texts_gives_documents_or_a_one_line_data_error(f):
    name, blob = f
    try:
        docs = read(name, blob)
    except (DataError, ConfigError):
        event("error")
        return
    event("documents")
    assert name.endswith((".txt", ".jsonl"))
    assert isinstance(docs, list) and len(docs) >= 2
    for d in docs:
        assert isinstance(d, str) and d and d == d.strip()
        d.encode("utf-8")  # usable by a byte-level tokenizer: no unpaired surrogates
    if name.endswith(".txt"):
        assert all("\n" not in d and "\r" not in d for d in docs)


def test_missing_file_or_a_folder_is_a_data_error(tmp_path):
    for path in (tmp_path / "nope.txt", tmp_path):
        with pytest.raises(DataError) as info:
            read_texts(path)
        assert_one_line_error(info.value, path)


@SETTINGS
@given(value=json_values.filter(lambda v: not isinstance(v, str)), line=st.integers(1, 5))
def test_jsonl_text_of_another_type_names_the_line(value, line):
    rows = [{"text": f"doc {i}"} for i in range(6)]
    rows[line - 1] = {"text": value}
    with pytest.raises(DataError, match=rf"corpus\.jsonl:{line}: expected an object with a string field 'text'"):
        read("corpus.jsonl", "\n".join(json.dumps(r) for r in rows).encode())


# --- round trips ------------------------------------------------------------------------------
# documents as a user writes them: stripped, non-empty; any Unicode but the file's line ends
docs_txt = (
    st.text(st.characters(blacklist_characters="\n\r", codec="utf-8"), min_size=1, max_size=50)
    .map(str.strip)
    .filter(bool)
)


@SETTINGS
@given(docs=st.lists(docs_txt, min_size=2, max_size=10), ending=st.sampled_from(["\n", "\r\n"]),
       blanks=st.lists(st.sampled_from(["", "  ", "\t"]), max_size=3), trailing=st.booleans())  # fmt: skip
@example(docs=["a\u2028b", "c\x85d", "e\x0cf", "g\x1ch"], ending="\n", blanks=[], trailing=True)
def test_txt_round_trip(docs, ending, blanks, trailing):
    lines = list(docs)
    for i, b in enumerate(blanks):
        lines.insert(i * 2, b)  # blank lines are skipped
    text = ending.join(lines) + (ending if trailing else "")
    assert read("corpus.txt", text.encode("utf-8")) == docs


@SETTINGS
@given(texts=st.lists(st.text(max_size=50), min_size=1, max_size=10), field=st.text(min_size=1, max_size=8),
       ensure_ascii=st.booleans(), extra=st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))  # fmt: skip
@example(texts=["a\u2028b", "c\x85d", "x\ny"], field="text", ensure_ascii=False, extra={})
def test_jsonl_round_trip(texts, field, ensure_ascii, extra):
    """Any string survives, line separators inside it included; blank texts are dropped."""
    rows = [{**{k: v for k, v in extra.items() if k != field}, field: t} for t in texts]
    blob = "\n".join(json.dumps(r, ensure_ascii=ensure_ascii) for r in rows).encode("utf-8")
    want = [t.strip() for t in texts if t.strip()]
    if len(want) < 2:
        with pytest.raises(DataError, match=rf"holds {len(want)} document"):
            read("corpus.jsonl", blob, field)
    else:
        assert read("corpus.jsonl", blob, field) == want


# --- the generated corpus ---------------------------------------------------------------------
@settings(max_examples=60)
@given(n=st.integers(2, 40), seed=st.integers(0, 2**64), other=st.integers(0, 2**64))
def test_generated_corpus_is_deterministic_and_reads_back(n, seed, other):
    docs = generate_corpus(n, seed)
    assert docs == generate_corpus(n, seed) and len(docs) == n
    assert all(d and d == d.strip() and "\n" not in d for d in docs)
    if other != seed and n >= 4:
        assert generate_corpus(n, other) != docs
    # written the way the data stage writes it, read back by the user's path
    assert read("corpus.txt", "".join(d + "\n" for d in docs).encode("utf-8")) == docs
