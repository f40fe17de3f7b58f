"""Export: save_pretrained reload, pipeline record, torch.export parity on new inputs."""

import copy
import json

import pytest

from mlx_core.runs import Manifest


def test_save_pretrained_reloads_and_translates_like_the_run(tiny_run):
    import torch
    from mlx_translation.predict import Translator
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, T5TokenizerFast

    folder = tiny_run / "export" / "hf"
    assert (folder / "model.safetensors").stat().st_size > 0
    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    assert isinstance(tok, T5TokenizerFast)
    model = AutoModelForSeq2SeqLM.from_pretrained(str(folder), local_files_only=True).eval()
    texts = ["The red car is big.", "I see two dogs."]
    translator = Translator(folder)
    out = translator(texts, max_new_tokens=12)
    assert [set(r) for r in out] == [{"translation_text"}] * 2
    enc = tok(["translate English to French: " + t for t in texts], return_tensors="pt", padding=True)
    with torch.no_grad():
        ids = model.generate(**enc, max_new_tokens=12, do_sample=False, num_beams=1)
    assert [t.strip() for t in tok.batch_decode(ids, skip_special_tokens=True)] == [r["translation_text"] for r in out]


def test_manifest_records_parity_and_pipeline(tiny_run):
    m = Manifest.load(tiny_run)
    metrics = m.data["metrics"]
    assert metrics["reload_identical"] == metrics["parity_samples"] == 4
    assert metrics["export_token_identical"] == 4
    assert metrics["export_max_abs_logit_diff"] < 1e-4
    pipe = m.data["records"]["pipeline_translation"]
    import transformers

    if not pipe["available"]:  # transformers 5 removed the translation pipeline
        assert pipe["transformers"] == transformers.__version__ and "removed" in pipe["reason"]
    paths = {a["path"] for a in m.artifacts()}
    assert {
        "export/hf/model.safetensors",
        "export/torch_export/encoder.pt2",
        "export/torch_export/decoder.pt2",
        "export/torch_export/decoder_first.pt2",
        "export/torch_export/decoder_step.pt2",
    } <= paths


def _strip(row, pad):
    """Token ids without trailing padding (generate pads finished rows)."""
    toks = [int(t) for t in row]
    while len(toks) > 1 and toks[-1] == pad:
        toks.pop()
    return toks


@pytest.fixture(scope="module")
def loaded(tiny_run):
    """(tokenizer, eager model, exported runner) of the tiny run, loaded once for the parity tests."""
    from mlx_translation.exported import ExportedSeq2Seq
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    folder = tiny_run / "export" / "hf"
    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(str(folder), local_files_only=True).eval()
    return tok, model, ExportedSeq2Seq(tiny_run / "export" / "torch_export")


def test_exported_programs_match_eager_greedy_on_new_inputs(tiny_run, loaded):
    import torch

    tok, model, runner = loaded
    # greedy runs the encoder once and one cached step per token, never the whole-prefix decoder
    calls = {"encoder": 0, "first": 0, "past_lengths": []}
    full_decoder, first_step, step, encoder = runner.decoder, runner.first_step, runner.step, runner.encoder

    def count_encoder(*a):
        calls["encoder"] += 1
        return encoder(*a)

    def count_first(*a):
        calls["first"] += 1
        return first_step(*a)

    def count_step(ids, hidden, mask, *past):
        assert ids.shape[1] == 1 and len(past) == 4 * model.config.num_decoder_layers
        calls["past_lengths"].append(past[0].shape[2])
        return step(ids, hidden, mask, *past)

    def no_full_decoder(*a):
        raise AssertionError("greedy recomputed the prefix with the full decoder")

    runner.encoder, runner.first_step, runner.step, runner.decoder = (
        count_encoder,
        count_first,
        count_step,
        no_full_decoder,
    )
    enc = tok(["translate English to French: The seven white horses are under my small table."], return_tensors="pt")
    out = runner.greedy(enc["input_ids"], enc["attention_mask"], 6)
    assert calls["encoder"] == calls["first"] == 1
    assert calls["past_lengths"] == list(range(1, out.shape[1] - 1))  # the past grows by one position per step
    runner.encoder, runner.first_step, runner.step, runner.decoder = encoder, first_step, step, full_decoder
    texts = [
        "translate English to French: " + t
        for t in ["A cat.", "The seven white horses are under my small table.", "We have it."]
    ]
    for batch in (texts[:1], texts):  # batch 1 and a padded batch of 3
        enc = tok(batch, return_tensors="pt", padding=True)
        with torch.no_grad():
            eager = model.generate(**enc, max_new_tokens=15, do_sample=False, num_beams=1)
        got = runner.greedy(enc["input_ids"], enc["attention_mask"], 15)
        pad = tok.pad_token_id
        assert [_strip(r, pad) for r in got] == [_strip(r, pad) for r in eager]
        # the same tokens without the KV-cache programs (exports from before they existed)
        no_cache = copy.copy(runner)
        no_cache.first_step = no_cache.step = None
        assert torch.equal(no_cache.greedy(enc["input_ids"], enc["attention_mask"], 15), got)
    meta = json.loads((tiny_run / "export" / "torch_export" / "exported.json").read_text())
    assert meta["vocab_size"] == model.config.vocab_size


def test_exported_beam_search_is_token_identical_to_generate_num_beams(loaded):
    import torch

    tok, model, runner = loaded
    texts = ["A cat.", "The seven white horses are under my small table.", "We have it.", "I see two dogs."]
    enc = tok(["translate English to French: " + t for t in texts], return_tensors="pt", padding=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    full_decoder, step = runner.decoder, runner.step
    reorders = []

    def cached_step(last, hidden, m, *past):
        assert last.shape == (4 * len(texts), 1)  # one token per beam row, the prefix comes from the cache
        reorders.append(past[0].shape[2])
        return step(last, hidden, m, *past)

    def no_full_decoder(*a):
        raise AssertionError("beam search recomputed the prefix with the full decoder")

    runner.decoder, runner.step = no_full_decoder, cached_step
    # generate()'s defaults (length_penalty 1, early_stopping False), then other finishing rules
    for settings in (
        {},
        {"length_penalty": 0.5, "early_stopping": True},
        {"length_penalty": 2.0, "early_stopping": "never"},
    ):
        with torch.no_grad():
            eager = model.generate(**enc, max_new_tokens=10, do_sample=False, num_beams=4, **settings)
        got = runner.beam(ids, mask, 10, num_beams=4, **settings)
        assert got.shape == eager.shape and torch.equal(got, eager), settings
    assert reorders and reorders[:2] == [1, 2]  # the past grows by one position per step
    runner.decoder, runner.step = full_decoder, step
    no_cache = copy.copy(runner)  # exports without the KV-cache programs: the same tokens, prefix recomputed
    no_cache.first_step = no_cache.step = None
    assert torch.equal(no_cache.beam(ids, mask, 10, num_beams=4), runner.beam(ids, mask, 10, num_beams=4))
