"""Data stage: the default corpus through the CLI; the readers, the prefix and truncation counts."""

import json

import pytest

from .conftest import ok, one_error_line, pairs, run_cli, write_jsonl


def test_generated_default_is_written_and_read_back(tmp_path):
    m = ok(run_cli("data", tmp_path))
    corpus = m.run_dir / "data" / "corpus.jsonl"
    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    assert len(rows) == 120 and rows[0]["translation"]["en"]
    assert m.data["metrics"]["train_records"] == 96 and m.data["metrics"]["test_records"] == 24
    assert m.data["records"]["prefix"] == "translate English to French: "
    assert (m.run_dir / "data" / "tokenizer" / "tokenizer.json").exists()
    assert m.data["records"]["tokenizer"]["vocab"] == 150
    assert any(a["path"] == "data/corpus.jsonl" for a in m.artifacts("dataset"))


def test_prefix_follows_the_languages():
    from mlx_translation.data import task_prefix

    assert task_prefix("fr", "en") == "translate French to English: "
    assert task_prefix("en", "xx") == "translate English to xx: "


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "disk", "disk-dict", "hub"])
def test_readers(tmp_path, fmt):
    from datasets import Dataset, DatasetDict
    from mlx_translation.data import read_records, validate

    records = pairs(50, seed=1)
    ds = Dataset.from_list(records)
    if fmt == "jsonl":
        path = write_jsonl(tmp_path / "books.jsonl", records)
    elif fmt == "parquet":
        path = tmp_path / "books.parquet"
        ds.to_parquet(str(path))
    elif fmt == "disk":
        path = tmp_path / "books"
        ds.save_to_disk(str(path))
    elif fmt == "disk-dict":  # what load_dataset("opus_books", "en-fr").save_to_disk() leaves
        path = tmp_path / "books"
        DatasetDict({"train": ds}).save_to_disk(str(path))
    else:  # the opus_books repository layout: <pair>/train-*.parquet shards
        path = tmp_path / "opus_books"
        (path / "en-fr").mkdir(parents=True)
        ds.select(range(30)).to_parquet(str(path / "en-fr" / "train-00000-of-00002.parquet"))
        ds.select(range(30, 50)).to_parquet(str(path / "en-fr" / "train-00001-of-00002.parquet"))
        (path / "README.md").write_text("opus_books\n")
    corpus = validate(read_records(path, "en", "fr"), "en", "fr", "error", str(path))
    assert corpus.records == [{"id": r["id"], "translation": r["translation"]} for r in records]


def test_invalid_records_skipped_and_long_sentences_truncated_and_counted(tmp_path):
    records = pairs(60, seed=2)
    del records[7]["translation"]["fr"]
    records[9]["translation"] = {"en": "Hello.", "de": "Hallo."}
    records[11]["translation"]["en"] = "   "
    records[0]["translation"]["en"] = " ".join(["the red car"] * 30)
    records[1]["translation"]["fr"] = " ".join(["la voiture rouge"] * 30)
    path = write_jsonl(tmp_path / "x.jsonl", records)
    m = ok(run_cli("data", tmp_path / "runs", f"data.path={path}", "data.on_invalid=skip", "data.max_length=64"))
    assert m.data["records"]["skipped_records"] == {"missing_language": 2, "empty_text": 1}
    assert m.data["metrics"]["records"] == 57
    counts = m.data["records"]["truncated"]
    assert sum(c["source"] for c in counts.values()) == 1
    assert sum(c["target"] for c in counts.values()) == 1
    assert any("truncated 2 sentences" in n for n in m.data["notes"])
    assert any("skipped 3 invalid records" in n for n in m.data["notes"])


def test_folder_without_dataset_names_what_it_looked_for(tmp_path):
    folder = tmp_path / "nothing"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    one_error_line(run_cli("data", tmp_path / "runs", f"data.path={folder}"), "nothing", ".parquet/.jsonl shards")


def test_tokenizer_training_is_reproducible():
    """UnigramTrainer alone orders some pieces by hash-map order; the plugin's tokenizer must not."""
    import json

    from mlx_translation.tokenizer import train_unigram

    texts = [r["translation"][k] for r in pairs(300) for k in ("en", "fr")]
    vocabs = [json.loads(train_unigram(texts, 150).backend_tokenizer.to_str())["model"]["vocab"] for _ in range(3)]
    assert vocabs[0] == vocabs[1] == vocabs[2]
    assert [p for p, _ in vocabs[0][:3]] == ["<pad>", "</s>", "<unk>"] and len(vocabs[0]) == 150
