"""Property-based tests of the Criteo TSV reader: hostile lines, round trips, KJT batches, splits.

Whatever bytes a line holds, ``parse_line`` returns a well-formed ``Example`` or raises ``BadLine``;
``read_tsv`` and the data stage skip and count such lines or raise a one-line ``DataError`` naming
file and line. No other exception type may escape.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import assume, event, example, given, settings
from hypothesis import strategies as st
from mlx_recsys import data as D
from mlx_recsys.config import N_CATEGORICAL, N_DENSE, RecsysConfig
from mlx_recsys.sample import generate_click_log

from mlx_core import ConfigError, DataError
from mlx_core.hostile import assert_one_line_error

REASONS = {"column_count", "label", "dense", "negative_id", "bad_id", "encoding"}
SETTINGS = settings(max_examples=150)  # the rest from the "mlx" hypothesis profile
FILES = settings(SETTINGS, max_examples=60)  # a file per example


# --- strategies -------------------------------------------------------------------------------
@st.composite
def schemas(draw) -> D.Schema:
    """1-6 features on distinct categorical columns, tables of 1 row up to 2**31 rows."""
    cols = draw(st.lists(st.integers(0, N_CATEGORICAL - 1), min_size=1, max_size=6, unique=True))
    rows = draw(st.lists(st.one_of(st.integers(1, 8), st.integers(1, 1 << 31)), min_size=len(cols), max_size=len(cols)))
    sep = draw(st.sampled_from([",", ";", "|", ":", "/"]))
    return D.Schema([f"f{c}" for c in cols], cols, rows, sep)


# raw categorical ids: small, 64-bit, and beyond 64 bits (Python ints: no overflow)
ids = st.one_of(st.integers(0, 300), st.integers(0, 2**64), st.integers(0, 2**200))
dense_ints = st.one_of(st.none(), st.integers(-(2**63), 2**63), st.integers(-(10**300), 10**300))


@st.composite
def rows_(draw) -> dict:
    """One good record: label, 13 integer cells (None = empty) and 26 bags of raw ids."""
    return {
        "label": draw(st.integers(0, 1)),
        "ints": draw(st.lists(dense_ints, min_size=N_DENSE, max_size=N_DENSE)),
        "cats": draw(st.lists(st.lists(ids, max_size=4), min_size=N_CATEGORICAL, max_size=N_CATEGORICAL)),
    }


def render(row: dict, sep: str, upper: bool = False, pad: str = "") -> str:
    """The record as a Criteo TSV line (no line ending); ``pad`` surrounds every cell and id."""
    hexes = [sep.join(f"{pad}{i:X}{pad}" if upper else f"{pad}{i:x}{pad}" for i in bag) for bag in row["cats"]]
    ints = ["" if v is None else f"{pad}{v}{pad}" for v in row["ints"]]
    return "\t".join([f"{pad}{row['label']}{pad}", *ints, *hexes])


def expected(row: dict, schema: D.Schema) -> tuple[float, list[float], list[list[int]]]:
    dense = [0.0 if v is None or v <= 0 else math.log1p(v) for v in row["ints"]]
    sparse = [[i % r for i in row["cats"][c]] for c, r in zip(schema.columns, schema.rows, strict=True)]
    return float(row["label"]), dense, sparse


HOSTILE_TOKENS = [
    "", " ", "-1", "-0", "+1", "1.5", "1e3", "nan", "inf", "-inf", "0x1f", "1_000", "\u0661\u0662", "\u2460", "\x00",
    "zz", "f" * 64, "9" * 310, "9" * 400, "9" * 5000, "-" + "9" * 400, ",", ",,", "a,,b", "a,-b", "\ufeff1", "\u2028",
    "\x85", "\x1c", "\r", "\x0b", "1\r", "é", "\ufffd",
]  # fmt: skip
BAD_BYTES = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xfe\xff", b"\xc0\xaf", b"\r"]


@st.composite
def hostile_lines(draw, read: tuple[int, ...] = (0, 1, 3)) -> bytes:
    """A line (without its newline): binary garbage, random text, a good line, a mutated or huge one.

    ``read``: the categorical columns the schema reads, where mutations matter most."""
    kind = draw(st.sampled_from(["good", "mutated", "long", "mutated", "bytes", "mutated", "text"]))
    if kind == "bytes":
        return draw(st.binary(max_size=400)).replace(b"\n", b" ")
    if kind == "text":
        return draw(st.text(max_size=400)).encode("utf-8").replace(b"\n", b" ")
    cells = render(draw(rows_()), ",", pad=draw(st.sampled_from(["", " "]))).split("\t")
    hot = st.one_of(st.just(0), st.integers(1, N_DENSE), st.sampled_from([1 + N_DENSE + c for c in read]))
    if kind == "long":
        i = draw(st.one_of(hot, st.integers(0, len(cells) - 1)))
        cells[i] = draw(st.sampled_from(["9" * 309, "9" * 4301, "7" * 100_000, "a" * 100_000, "x" * 100_000]))
    elif kind == "mutated":
        for _ in range(draw(st.integers(1, 2))):
            op = draw(st.sampled_from(["replace"] * 4 + ["drop", "insert", "append_to", "append_to"]))
            i = draw(st.one_of(hot, st.integers(0, len(cells) - 1))) if cells else 0
            i = min(i, len(cells) - 1) if cells else 0
            token = draw(st.one_of(st.sampled_from(HOSTILE_TOKENS), st.text(max_size=12)))
            if op == "replace" and cells:
                cells[i] = token
            elif op == "drop" and cells:
                del cells[i]
            elif op == "insert":
                cells.insert(i, token)
            elif cells:
                cells[i] += draw(st.sampled_from([",", ",-1", ",zz", ", ", ",,", ",1f"]))
    raw = "\t".join(cells).encode("utf-8")
    if kind == "mutated" and draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from(BAD_BYTES)) + raw[at:]
    if kind == "mutated" and draw(st.integers(0, 9)) == 0:
        raw = raw[: draw(st.integers(0, len(raw)))]  # truncated mid-line
    return raw.replace(b"\n", b" ")  # one physical line each: the oracle below numbers them


def oracle(raw: bytes, schema: D.Schema) -> D.Example | str:
    """What one line should give: the Example, or the skip reason (``"empty"`` for blank lines)."""
    if not raw.strip():
        return "empty"
    try:
        return D.parse_line(D.decode(raw), schema)
    except D.BadLine as bad:
        return bad.reason


def check_example(ex: D.Example, schema: D.Schema) -> None:
    assert ex.label in (0.0, 1.0)
    assert len(ex.dense) == N_DENSE
    assert all(isinstance(v, float) and math.isfinite(v) and v >= 0.0 for v in ex.dense), ex.dense
    assert len(ex.sparse) == len(schema.features)
    for bag, rows in zip(ex.sparse, schema.rows, strict=True):
        assert all(type(i) is int and 0 <= i < rows for i in bag), (bag, rows)


# --- parse_line -------------------------------------------------------------------------------
@SETTINGS
@given(schema=schemas(), data=st.data())
def test_parse_line_gives_a_well_formed_example_or_a_bad_line(schema, data):
    raw = data.draw(hostile_lines(tuple(schema.columns)), label="raw")
    try:
        ex = D.parse_line(D.decode(raw + b"\n"), schema)
    except D.BadLine as bad:
        assert bad.reason in REASONS, bad.reason
        assert_one_line_error(bad, types=D.BadLine)
        event(f"bad line: {bad.reason}")
        return
    event("good line")
    check_example(ex, schema)
    # deterministic: the same bytes give the same example
    assert D.parse_line(D.decode(raw), schema) == ex


@SETTINGS
@given(row=rows_(), schema=schemas(), upper=st.booleans(), pad=st.sampled_from(["", " ", "  "]),
       ending=st.sampled_from(["", "\n", "\r\n"]))  # fmt: skip
def test_round_trip_of_drawn_records(row, schema, upper, pad, ending):
    ex = D.parse_line(render(row, schema.sep, upper, pad) + ending, schema)
    label, dense, sparse = expected(row, schema)
    assert ex.label == label and ex.dense == dense and ex.sparse == sparse
    check_example(ex, schema)


@SETTINGS
@given(row=rows_(), rows=st.integers(1, 1 << 31), wider=st.integers(2, 1000))
def test_hashing_is_deterministic_and_agrees_across_table_sizes(row, rows, wider):
    """One column read by two features: the bigger table's id reduces to the smaller's (id % rows)."""
    small = D.Schema(["a"], [0], [rows])
    big = D.Schema(["a"], [0], [rows * wider])
    line = render(row, ",")
    a, b = D.parse_line(line, small), D.parse_line(line, big)
    assert a == D.parse_line(line, small)
    assert [i % rows for i in b.sparse[0]] == a.sparse[0]
    assert all(0 <= i < rows * wider for i in b.sparse[0])


no_tab = st.text(st.characters(blacklist_characters="\t\n\r"), max_size=8)


@SETTINGS
@given(cells=st.lists(no_tab, min_size=1, max_size=80).filter(lambda c: len(c) != D.N_COLUMNS))
def test_wrong_column_count_is_a_bad_line(cells):
    with pytest.raises(D.BadLine) as info:
        D.parse_line("\t".join(cells), D.Schema(["a"], [0], [10]))
    assert info.value.reason == "column_count" and f"got {len(cells)}" in str(info.value)


@SETTINGS
@given(row=rows_(), label=st.text(st.characters(blacklist_characters="\t\n\r"), max_size=10))
def test_label_other_than_0_or_1_is_a_bad_line(row, label):
    assume(label.strip() not in ("0", "1"))
    cells = render(row, ",").split("\t")
    with pytest.raises(D.BadLine) as info:
        D.parse_line("\t".join([label, *cells[1:]]), D.Schema(["a"], [0], [10]))
    assert info.value.reason == "label"
    assert_one_line_error(info.value, types=D.BadLine)


not_an_integer = st.text(st.characters(blacklist_characters="\t\n\r", blacklist_categories=["Nd"]), min_size=1)


@SETTINGS
@given(row=rows_(), j=st.integers(0, N_DENSE - 1),
       cell=st.one_of(not_an_integer.filter(str.strip), st.integers(10**309, 10**4000).map(str)))  # fmt: skip
def test_dense_cell_that_is_no_usable_integer_is_a_bad_line(row, j, cell):
    """Text without digits, and integers too large for a float (log1p would overflow)."""
    cells = render(row, ",").split("\t")
    cells[1 + j] = cell
    with pytest.raises(D.BadLine) as info:
        D.parse_line("\t".join(cells), D.Schema(["a"], [0], [10]))
    assert info.value.reason == "dense" and f"I{j + 1}" in str(info.value)
    assert_one_line_error(info.value, types=D.BadLine)


@SETTINGS
@given(row=rows_(), schema=schemas(), k=st.integers(0, 5), pos=st.integers(0, 4),
       bad=st.one_of(st.builds("-{:x}".format, ids),
                     st.text("ghijklmnopqrstuvwyzGHIJKLMNOPQRSTUVWYZ!@#$%^&*()[]{}'\"?", min_size=1)))  # fmt: skip
def test_negative_or_non_hex_id_in_a_read_column_is_a_bad_line(row, schema, k, pos, bad):
    col = schema.columns[k % len(schema.columns)]
    bag = [f"{i:x}" for i in row["cats"][col]]
    bag.insert(min(pos, len(bag)), bad)
    cells = render(row, schema.sep).split("\t")
    cells[1 + N_DENSE + col] = schema.sep.join(bag)
    with pytest.raises(D.BadLine) as info:
        D.parse_line("\t".join(cells), schema)
    assert info.value.reason == ("negative_id" if bad.startswith("-") else "bad_id")
    assert f"C{col + 1}" in str(info.value)
    assert_one_line_error(info.value, types=D.BadLine)


# --- read_tsv ---------------------------------------------------------------------------------
def file_lines(draw, min_good: int = 0) -> tuple[list[bytes], list[dict]]:
    good = draw(st.lists(rows_(), min_size=min_good, max_size=12))
    bad = draw(st.lists(st.one_of(hostile_lines(), st.sampled_from([b"", b" ", b"\t\t", b"\r"])), max_size=8))
    tagged = [("g", r) for r in good] + [("b", b) for b in bad]
    order = draw(st.permutations(range(len(tagged))))
    lines, in_order = [], []
    for i in order:
        kind, x = tagged[i]
        lines.append(render(x, ",").encode("utf-8") if kind == "g" else x)
        if kind == "g":
            in_order.append(x)
    return lines, in_order  # the good records in file order


@st.composite
def tsv_files(draw, min_good: int = 0):
    lines, good = file_lines(draw, min_good)
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    last = draw(st.sampled_from([ending, b""]))  # with or without a final newline
    if lines and not lines[-1]:
        last = ending  # else that empty last line would not be a line at all
    blob = ending.join(lines) + (last if lines else b"")
    return lines, good, blob


SCHEMA = D.Schema(["f0", "f1", "f3"], [0, 1, 3], [7, 1 << 20, 2])


@settings(FILES, max_examples=100)
@given(f=tsv_files(), policy=st.sampled_from(["skip", "error"]))
def test_read_tsv_skips_and_counts_or_raises_a_one_line_data_error(f, policy):
    lines, _, blob = f
    want = [oracle(raw, SCHEMA) for raw in lines]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clicks.tsv"
        path.write_bytes(blob)
        stats = D.ScanStats()
        got: list[D.Example] = []
        try:
            for ex in D.read_tsv(path, SCHEMA, policy, stats):
                got.append(ex)
        except DataError as err:
            event("DataError")
            assert policy == "error"
            first_bad = next(n for n, w in enumerate(want, 1) if isinstance(w, str) and w != "empty")
            msg = assert_one_line_error(err)
            assert msg.startswith(f"{path}:{first_bad}: ") and "data.on_bad_line=skip" in msg, msg[:300]
            assert got == [w for w in want[: first_bad - 1] if isinstance(w, D.Example)]
            return
    good = [w for w in want if isinstance(w, D.Example)]
    assert got == good
    for ex in got:
        check_example(ex, SCHEMA)
    assert stats.lines == len(lines) and stats.good == len(good)
    assert stats.positives == sum(int(ex.label) for ex in good)
    assert stats.skipped == Counter(w for w in want if isinstance(w, str))
    if policy == "error":
        assert all(w == "empty" for w in want if isinstance(w, str))


def test_read_tsv_missing_file_or_folder_is_a_data_error(tmp_path):
    for path in (tmp_path / "nope.tsv", tmp_path):
        with pytest.raises(DataError) as info:
            list(D.read_tsv(path, SCHEMA))
        assert_one_line_error(info.value, path)


@FILES
@given(f=tsv_files())
def test_good_records_read_back_exactly(f):
    lines, good, blob = f
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.tsv"
        path.write_bytes(blob)
        got = list(D.read_tsv(path, SCHEMA, "skip"))
    # the drawn good records, in file order, are among what is read (hostile lines may also parse)
    want = [expected(r, SCHEMA) for r in good]
    have = [(e.label, e.dense, e.sparse) for e in got]
    it = iter(have)
    assert all(any(w == h for h in it) for w in want)  # an ordered subsequence


# --- the data stage (in process) --------------------------------------------------------------
@pytest.fixture(scope="module")
def registry():
    import mlx_recsys

    from mlx_core.plugins import OK, PluginRecord, Registry

    reg = Registry(load=False)
    reg.register(mlx_recsys, PluginRecord(name="recsys", status=OK))
    return reg


def run_data(registry, runs: Path, path: Path, policy: str):
    from rich.console import Console

    from mlx_core import runner

    sets = [
        f"data.path={json.dumps(str(path))}",
        f"data.on_bad_line={policy!r}",
        "data.batch_size=2",
        "data.val_fraction=0.25",
    ]
    return runner.run(registry, "recsys", "data", overrides=sets, runs_dir=runs, device="cpu",
                      console=Console(file=io.StringIO()))  # fmt: skip


@settings(FILES, max_examples=25)
@given(f=tsv_files(min_good=8), policy=st.sampled_from(["skip", "error"]))
def test_data_stage_counts_bad_lines_or_fails_with_one_line(registry, f, policy):
    lines, _, blob = f
    schema = D.Schema.from_config(RecsysConfig())
    want = [oracle(raw, schema) for raw in lines]
    n_good = sum(isinstance(w, D.Example) for w in want)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clicks.tsv"
        path.write_bytes(blob)
        try:
            manifest = run_data(registry, Path(tmp) / "runs", path, policy)
        except DataError as err:
            event(f"{policy}: DataError")
            assert_one_line_error(err, path)
            bad = [n for n, w in enumerate(want, 1) if isinstance(w, str) and w != "empty"]
            assert policy == "error" and bad and str(err).startswith(f"{path}:{bad[0]}: ")
            return
    event(f"{policy}: completed")
    assert policy == "skip" or all(w == "empty" for w in want if isinstance(w, str))
    n_train, n_val = D.split_counts(n_good, 0.25)
    assert manifest.data["metrics"]["examples"] == n_good
    assert (manifest.data["metrics"]["train_examples"], manifest.data["metrics"]["val_examples"]) == (n_train, n_val)
    skipped = Counter(w for w in want if isinstance(w, str))
    assert manifest.data["records"]["skipped_by_reason"] == dict(skipped)


# --- to_batch ---------------------------------------------------------------------------------
bags = st.lists(st.integers(0, 2**62), max_size=5)


@settings(max_examples=60)
@given(n_features=st.integers(1, 4), data=st.data())
def test_to_batch_lengths_and_values_are_the_bags(n_features, data):
    features = [f"f{k}" for k in range(n_features)]
    exs = data.draw(st.lists(
        st.builds(D.Example, st.sampled_from([0.0, 1.0]),
                  st.lists(st.floats(0, 50), min_size=N_DENSE, max_size=N_DENSE),
                  st.lists(bags, min_size=n_features, max_size=n_features)),
        min_size=1, max_size=8))  # fmt: skip
    import torch

    dense, kjt, labels = D.to_batch(exs, features)
    assert kjt.keys() == features
    assert kjt.lengths().tolist() == [len(ex.sparse[k]) for k in range(n_features) for ex in exs]
    assert kjt.values().tolist() == [i for k in range(n_features) for ex in exs for i in ex.sparse[k]]
    per_key = kjt.to_dict()
    for k, f in enumerate(features):
        assert per_key[f].lengths().tolist() == [len(ex.sparse[k]) for ex in exs]
        assert per_key[f].values().tolist() == [i for ex in exs for i in ex.sparse[k]]
    assert dense.shape == (len(exs), N_DENSE) and labels.tolist() == [ex.label for ex in exs]
    assert torch.equal(dense, torch.tensor([ex.dense for ex in exs], dtype=torch.float32))


def test_to_batch_like_the_tutorial_with_an_empty_bag_in_the_middle():
    exs = [D.Example(1.0, [0.0] * N_DENSE, [b]) for b in ([101, 202], [], [303])]
    _, kjt, _ = D.to_batch(exs, ["product"])
    assert kjt.to_dict()["product"].offsets().tolist() == [0, 2, 2, 3]


# --- train/val split --------------------------------------------------------------------------
fractions = st.floats(0, 1, exclude_min=True, exclude_max=True)


@SETTINGS
@given(n=st.integers(0, 5000), val_fraction=fractions)
@example(n=10, val_fraction=5e-324)  # 1/val_fraction is inf
def test_split_counts_match_is_val(n, val_fraction):
    n_train, n_val = D.split_counts(n, val_fraction)
    held = sum(D.is_val(i, val_fraction) for i in range(n))
    assert (n_train, n_val) == (n - held, held)
    assert n_train >= n_val >= 0  # at most every 2nd example is held out


@settings(FILES, max_examples=40)
@given(f=tsv_files(min_good=1), val_fraction=fractions)
def test_every_good_example_lands_in_exactly_one_split(f, val_fraction):
    lines, _, blob = f
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.tsv"
        # tag each line with its position in I13 so that equal records stay distinguishable
        tagged = []
        for n, raw in enumerate(lines):
            cells = raw.split(b"\t")
            if len(cells) == D.N_COLUMNS:
                cells[N_DENSE] = str(n + 1).encode()
            tagged.append(b"\t".join(cells))
        path.write_bytes(b"\n".join(tagged) + b"\n")
        spec = {"path": str(path), "schema": vars(SCHEMA), "on_bad_line": "skip", "val_fraction": val_fraction}
        every = [ex.dense[N_DENSE - 1] for ex in D.read_tsv(path, SCHEMA, "skip")]
        train = [ex.dense[N_DENSE - 1] for ex in D.iter_split(spec, "train")]
        val = [ex.dense[N_DENSE - 1] for ex in D.iter_split(spec, "val")]
    assert len(set(every)) == len(every)
    assert sorted(train + val) == sorted(every) and not set(train) & set(val)
    assert (len(train), len(val)) == D.split_counts(len(every), val_fraction)


# --- the generated click log ------------------------------------------------------------------
@settings(max_examples=10)
@given(n=st.integers(1, 60), users=st.integers(2, 30), products=st.integers(2, 30), categories=st.integers(1, 8),
       seed=st.integers(0, 2**64))  # fmt: skip
def test_generated_log_is_deterministic_and_every_line_is_good(n, users, products, categories, seed):
    schema = D.Schema.from_config(RecsysConfig())
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a.tsv", Path(tmp) / "b.tsv"
        facts = generate_click_log(a, n, users, products, categories, seed)
        generate_click_log(b, n, users, products, categories, seed)
        assert a.read_bytes() == b.read_bytes()
        stats = D.ScanStats()
        exs = list(D.read_tsv(a, schema, "error", stats))
    assert len(exs) == stats.lines == n == facts["examples"] and not stats.skipped
    assert facts["ctr"] == stats.positives / n
    user, product = schema.features.index("user"), schema.features.index("product")
    assert all(ex.sparse[user][0] < users and ex.sparse[product][0] < products for ex in exs)


@pytest.mark.parametrize("seed", [-1, -(2**70)])
def test_generated_log_with_a_negative_seed_is_a_config_error(tmp_path, seed):
    with pytest.raises(ConfigError) as info:
        generate_click_log(tmp_path / "a.tsv", 10, 5, 5, 2, seed)
    assert_one_line_error(info.value, seed)
