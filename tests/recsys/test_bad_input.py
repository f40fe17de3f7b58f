"""Bad input through the CLI: exit code 2 and exactly one `error:` line naming the offending value.

All of these fail in the data stage's checks, before torch is imported, so they are fast."""

import json
import os
from functools import partial

import pytest

from mlx_core.testing import one_line_error

from .conftest import TINY, line, run, run_ok

#: these fail in the data stage, after the run's banner: the error is the last line
expect_error = partial(one_line_error, during_run=True)


def good_lines(n: int) -> str:
    cats = ["1a", "2b", "3", "4,5"] + [""] * 22
    return "".join(line(str(i % 2), cats=cats) for i in range(n))


def test_wrong_column_count_names_file_and_line(tmp_path):
    data = tmp_path / "clicks.tsv"
    data.write_text(good_lines(5) + "1\t2\t3\n" + good_lines(200))
    proc = run("data", tmp_path / "runs", *TINY, f"data.path={json.dumps(str(data))}")
    expect_error(proc, f"{data}:6", "expected 40 tab-separated columns", "got 3")


def test_skip_counts_bad_lines_into_the_manifest(tmp_path):
    data = tmp_path / "clicks.tsv"
    neg = line("1", cats=["-7"] + [""] * 25)
    data.write_text(good_lines(5) + "1\t2\t3\n" + neg + good_lines(200) + "oops\n")
    _, m = run_ok("data", tmp_path / "runs", *TINY, f"data.path={json.dumps(str(data))}", "data.on_bad_line=skip")
    assert m["records"]["skipped_lines"] == 3
    assert m["records"]["skipped_by_reason"] == {"column_count": 2, "negative_id": 1}
    assert m["metrics"]["examples"] == 205


def test_binary_garbage(tmp_path):
    data = tmp_path / "garbage.tsv"
    data.write_bytes(os.urandom(4096) + b"\xff\xfe\x00\t\n")
    proc = run("data", tmp_path / "runs", *TINY, f"data.path={json.dumps(str(data))}")
    expect_error(proc, f"{data}:")


def test_negative_id(tmp_path):
    data = tmp_path / "neg.tsv"
    data.write_text(good_lines(3) + line("0", cats=["a", "-1f"] + [""] * 24))
    proc = run("data", tmp_path / "runs", *TINY, f"data.path={json.dumps(str(data))}")
    expect_error(proc, f"{data}:4", "negative id '-1f'")


def test_missing_data_file(tmp_path):
    proc = run("data", tmp_path / "runs", *TINY, f"data.path={json.dumps(str(tmp_path / 'nope.tsv'))}")
    expect_error(proc, "nope.tsv")


@pytest.mark.parametrize(
    "setting, fragment",
    [
        ('train.sharding={nosuch_table="table_wise"}', "'nosuch_table'"),
        ('train.sharding={user_table="diagonal"}', "'diagonal'"),
        ('train.sharding={user_table=["row_wise","bogus"]}', "'bogus'"),
        # the launch moved to the core launcher: the old keys say where it went
        ("train.nproc=2", "--nproc"),
        ("train.nnodes=3:1", "--nnodes"),
    ],
)
def test_bad_config(tmp_path, setting, fragment):
    proc = run("data", tmp_path / "runs", *TINY, setting)
    expect_error(proc, fragment)


def test_mismatched_embedding_dims(tmp_path):
    tables = (
        'model.tables=[{name="a",embedding_dim=8,feature_names=["user"]},'
        '{name="b",embedding_dim=16,feature_names=["product"]}]'
    )
    proc = run("data", tmp_path / "runs", *TINY, tables)
    expect_error(proc, "embedding_dim")
