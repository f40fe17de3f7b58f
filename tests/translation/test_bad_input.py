"""Bad input: every case exits 2 with one ``error:`` line that names the offending value."""

import json

from .conftest import one_error_line, pairs, run_cli, write_jsonl


def test_missing_language_key_names_the_record(tmp_path):
    records = pairs(30)
    del records[7]["translation"]["fr"]
    path = write_jsonl(tmp_path / "x.jsonl", records)
    one_error_line(run_cli("data", tmp_path / "runs", f"data.path={path}"), "record 7", "'fr'", "x.jsonl")


def test_empty_string(tmp_path):
    records = pairs(30)
    records[3]["translation"]["en"] = ""
    path = write_jsonl(tmp_path / "e.jsonl", records)
    one_error_line(run_cli("data", tmp_path / "runs", f"data.path={path}"), "record 3", "empty 'en'")


def test_over_long_sentence_can_be_an_error(tmp_path):
    records = pairs(30)
    records[4]["translation"]["en"] = " ".join(["the red car"] * 40)
    path = write_jsonl(tmp_path / "l.jsonl", records)
    one_error_line(
        run_cli("data", tmp_path / "runs", f"data.path={path}", "data.max_length=64", "data.on_too_long=error"),
        f"record id {records[4]['id']!r}",
        "data.max_length=64",
    )


def test_not_json_and_wrong_suffix_and_missing_path(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "translation": {"en": "a", "fr": "b"}}\n{not json\n')
    one_error_line(run_cli("data", tmp_path / "runs", f"data.path={bad}"), "bad.jsonl:2")
    csv = tmp_path / "books.csv"
    csv.write_text("en,fr\n")
    one_error_line(run_cli("data", tmp_path / "runs", f"data.path={csv}"), "'.csv'")
    one_error_line(
        run_cli("data", tmp_path / "runs", f"data.path={tmp_path / 'nope.jsonl'}"), "nope.jsonl", "does not exist"
    )


def test_generated_corpus_only_for_english_french(tmp_path):
    one_error_line(run_cli("data", tmp_path, "data.target_lang=de"), "'de'")


def _tiny_t5_folder(folder, vocab_size, tokenizer_vocab=150):
    """A tiny T5 checkpoint folder whose tokenizer has ``tokenizer_vocab`` tokens."""
    from mlx_translation.tokenizer import train_unigram
    from transformers import T5Config, T5ForConditionalGeneration

    texts = [r["translation"][k] for r in pairs(200) for k in ("en", "fr")]
    tok = train_unigram(["translate English to French: " + t for t in texts], tokenizer_vocab)
    cfg = T5Config(vocab_size=vocab_size, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)  # fmt: skip
    T5ForConditionalGeneration(cfg).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return len(tok)


def test_tokenizer_larger_than_embedding(tmp_path):
    n = _tiny_t5_folder(tmp_path / "ckpt", vocab_size=40)
    proc = run_cli("model", tmp_path / "runs", f"model.path={tmp_path / 'ckpt'}")
    one_error_line(proc, f"tokenizer has {n} tokens", "only 40 rows")


def test_folder_that_is_not_seq2seq(tmp_path):
    folder = tmp_path / "gpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": 100}))
    one_error_line(run_cli("data", tmp_path / "runs", f"model.path={folder}"), "not a seq2seq model", "'gpt2'")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_error_line(run_cli("data", tmp_path / "runs", f"model.path={empty}"), "no config.json")


def test_bad_config_values(tmp_path):
    one_error_line(run_cli("data", tmp_path, "data.test_size=1.5"), "data.test_size")
    one_error_line(run_cli("data", tmp_path, "data.on_invalid=ignore"), "data.on_invalid")
