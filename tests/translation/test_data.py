"""Data stage through the CLI: the three readers, the split, the prefix and truncation counts."""

import json

import pytest

from conftest import ok, one_error_line, pairs, run_cli, write_jsonl


def test_generated_default_is_written_and_read_back(tmp_path):
    m = ok(run_cli("data", tmp_path))
    corpus = m.run_dir / "data" / "corpus.jsonl"
    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    assert len(rows) == 120 and rows[0]["translation"]["en"]
    assert m.data["metrics"]["train_records"] == 96 and m.data["metrics"]["test_records"] == 24
    assert m.data["records"]["prefix"] == "translate English to French: "
    assert (m.run_dir / "data" / "tokenizer" / "tokenizer.json").exists()
    assert any(a["path"] == "data/corpus.jsonl" for a in m.artifacts("dataset"))


def test_prefix_follows_the_languages(tmp_path):
    m = ok(run_cli("data", tmp_path, "data.source_lang=fr", "data.target_lang=en"))
    assert m.data["records"]["prefix"] == "translate French to English: "


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "disk", "hub"])
def test_readers(tmp_path, fmt):
    records = pairs(50, seed=1)
    if fmt == "jsonl":
        path = write_jsonl(tmp_path / "books.jsonl", records)
    else:
        from datasets import Dataset, DatasetDict

        ds = Dataset.from_list(records)
        if fmt == "parquet":
            path = tmp_path / "books.parquet"
            ds.to_parquet(str(path))
        elif fmt == "hub":  # the opus_books repository layout: <pair>/train-*.parquet shards
            path = tmp_path / "opus_books"
            (path / "en-fr").mkdir(parents=True)
            ds.select(range(30)).to_parquet(str(path / "en-fr" / "train-00000-of-00002.parquet"))
            ds.select(range(30, 50)).to_parquet(str(path / "en-fr" / "train-00001-of-00002.parquet"))
            (path / "README.md").write_text("opus_books\n")
        else:
            path = tmp_path / "books"
            DatasetDict({"train": ds}).save_to_disk(str(path))
    m = ok(run_cli("data", tmp_path / "runs", f"data.path={path}"))
    assert m.data["metrics"]["records"] == 50
    assert m.data["metrics"]["test_records"] == 10


def test_long_sentences_are_truncated_and_counted(tmp_path):
    records = pairs(40, seed=2)
    long_en = " ".join(["the red car"] * 30)
    records[0]["translation"]["en"] = long_en
    records[1]["translation"]["fr"] = " ".join(["la voiture rouge"] * 30)
    path = write_jsonl(tmp_path / "long.jsonl", records)
    m = ok(run_cli("data", tmp_path / "runs", f"data.path={path}", "data.max_length=64"))
    counts = m.data["records"]["truncated"]
    assert sum(c["source"] for c in counts.values()) == 1
    assert sum(c["target"] for c in counts.values()) == 1
    assert any("truncated" in n for n in m.data["notes"])


def test_folder_without_dataset_names_what_it_looked_for(tmp_path):
    folder = tmp_path / "nothing"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    one_error_line(run_cli("data", tmp_path / "runs", f"data.path={folder}"), "nothing", ".parquet/.jsonl shards")
