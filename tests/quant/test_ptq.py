"""Post-training int8 of another plugin's model, against the tiny test plugin ``tinyseg``: from a
finished run (``source.run``) and as a hook wrapper on that plugin's export (``quant.scheme``)."""

from __future__ import annotations

import json

import pytest
import torch
from mlx_quant import ptq
from torch import nn


@pytest.fixture
def seg_run(run_inproc):
    """A finished tinyseg run (trained a little, exported in fp32)."""
    return run_inproc("tinyseg", "export", ["train.steps=25"])


def test_quant_export_of_a_finished_run(seg_run, run_inproc, registry, monkeypatch):
    import mlx_quant.source

    monkeypatch.setattr(mlx_quant.source, "source_registry", lambda: registry)
    m = run_inproc("quant", "export", [f"source.run={seg_run.run_dir}", "source.calibration_batches=4",
                                       "source.eval_examples=4"])  # fmt: skip
    report = json.loads((m.run_dir / "export" / "quant_report.json").read_text())
    assert set(report["schemes"]) == {"int8_weight_only", "int8_dynamic", "int8_static"}
    assert report["layers"] == {"linear": 2, "conv": 1}
    static = report["schemes"]["int8_static"]
    assert (m.run_dir / static["path"]).read_bytes()[4:8] == b"ET12"  # an ExecuTorch program
    assert static["size_ratio"] < 1  # tiny net: the .pte container dominates; the benchmark measures a real one
    q = static["quality"]
    assert q["metric"] == "mIoU" and q["argmax_agreement"] > 0.9 and abs(q["delta"]) < 0.1
    assert q["fp32"] > 0.3  # tinyseg learned something: the delta is measured on a trained model
    for scheme in ("int8_weight_only", "int8_dynamic"):
        entry = report["schemes"][scheme]
        assert entry["quantized_linear_layers"] == 2 and entry["quality"]["max_abs_diff"] < 0.5
    assert m.data["records"]["source"]["plugin"] == "tinyseg"
    assert m.data["records"]["source_weights"].endswith("epoch-001.pt")
    assert m.data["records"]["trained"] is True
    gate = m.data["records"]["quant_gate"]  # the default gates passed and say so, per scheme
    assert {s: (g["metric"], g["passed"], g["limit_key"]) for s, g in gate.items()} == {
        s: ("mIoU", True, "gate.max_miou_drop") for s in report["schemes"]
    }
    assert report["schemes"]["int8_static"]["gate"] == gate["int8_static"]
    kinds = [a["kind"] for a in m.data["artifacts"]]
    assert kinds.count("quantized") == 3 and "chart" in kinds
    # the source run is left untouched
    assert not (seg_run.run_dir / "export" / "quant").exists()


def test_hook_wrapper_adds_a_quantized_artifact_to_another_plugins_export(run_inproc):
    m = run_inproc("tinyseg", "export", ["train.steps=5", "quant.scheme=int8_dynamic", "quant.eval_examples=2"])
    rel = "export/quant/int8_dynamic.pt"
    arts = {a["path"]: a for a in m.data["artifacts"]}
    assert "export/model.pt" in arts  # the domain plugin's own export ran
    assert arts[rel]["kind"] == "quantized" and arts[rel]["scheme"] == "int8_dynamic"
    rec = m.data["records"]["quant"]
    assert rec["scheme"] == "int8_dynamic" and rec["quantized_linear_layers"] == 2
    assert (m.run_dir / "export" / "quant" / "quant_report.json").is_file()

    plain = run_inproc("tinyseg", "export", ["train.steps=0"])  # quant.scheme defaults to none: nothing added
    assert not (plain.run_dir / "export" / "quant").exists() and "quant" not in plain.data.get("records", {})


def test_quality_scores_segmentation_and_classification():
    ref = [torch.tensor([[[[2.0, 0.0]], [[0.0, 2.0]]]])]  # [1, 2 classes, 1, 2]
    out = [torch.tensor([[[[1.0, 0.0]], [[0.0, -1.0]]]])]
    q = ptq.quality(ref, out, [torch.tensor([[[0, 1]]])])
    assert q["metric"] == "mIoU" and q["fp32"] == 1.0 and q["quantized"] < 1.0 and q["delta"] < 0
    assert q["argmax_agreement"] == 0.5 and q["max_abs_diff"] == 3.0
    q = ptq.quality([torch.eye(3)], [torch.eye(3)], [torch.tensor([0, 1, 1])])
    assert q["metric"] == "accuracy" and q["delta"] == 0 and q["fp32"] == pytest.approx(2 / 3)


def test_examples_come_through_the_core_contract(tmp_path):
    from mlx_core import PluginError
    from mlx_core.contract import check_examples

    class Ctx:
        plugin = "other"

        def examples(self, data, n, split):
            return [((torch.ones(1, 3), torch.zeros(1, 3)), None)] * n

    got = ptq.examples(Ctx(), {"any": "object"}, 2, "eval")
    assert len(got) == 2 and len(got[0][0]) == 2 and check_examples(got, 2) == []

    class NoExamples(Ctx):
        def examples(self, data, n, split):
            raise PluginError("plugin 'other' provides no examples of its data")

    with pytest.raises(PluginError, match="provides no examples"):
        ptq.examples(NoExamples(), object(), 1, "eval")


def test_output_unwrapping():
    net = ptq.TensorOutput(nn.Identity())
    t = torch.ones(2)
    assert ptq.first_tensor({"aux": t * 2, "out": t}) is t
    assert ptq.first_tensor((t, None)) is t
    assert net(t) is t


class WordTokenizer:
    def batch_decode(self, seqs, skip_special_tokens=True):
        return [" ".join(f"w{int(i)}" for i in s if int(i) > 1) for s in seqs]


def test_seq2seq_models_get_torchao_int8_and_a_translation_score(tmp_path):
    """The translation plugin's convention: an encoder-decoder with generate(), tokenized splits."""
    from transformers import T5Config, T5ForConditionalGeneration

    from mlx_core import ConfigError
    from mlx_core.testing import stage_context

    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(vocab_size=32, d_model=32, d_ff=64, d_kv=16, num_layers=1,
                                                num_heads=2, decoder_start_token_id=0, pad_token_id=0,
                                                eos_token_id=1))  # fmt: skip
    rows = [{"input_ids": [5 + i, 6, 7, 1], "labels": [8, 9 + i, 1]} for i in range(3)]
    data = {"tokenized": {"train": rows, "test": rows}, "tokenizer": WordTokenizer()}
    ctx = stage_context(tmp_path, "tinytrans", stage="export")
    report = ptq.quantize_model(ctx, model, data, ["int8_dynamic"], 4, 2, ("export", "quant"))
    entry = report["schemes"]["int8_dynamic"]
    assert report["kind"] == "seq2seq" and report["eval_examples"] == 2
    assert entry["quantized_linear_layers"] == report["layers"]["linear"] > 0
    assert entry["quality"]["metric"] in ("BLEU", "exact match") and 0 <= entry["quality"]["identical_outputs"] <= 1
    assert (tmp_path / entry["path"]).is_file()
    assert entry["gate"]["metric"] == entry["quality"]["metric"] and entry["gate"]["limit_key"] in (
        "quant.max_bleu_drop",
        "quant.max_accuracy_drop",
    )
    assert ctx.manifest.data["records"]["quant_gate"]["int8_dynamic"] == entry["gate"]
    both = ptq.quantize_model(ctx, model, data, ["int8_weight_only", "int8_static"], 4, 1, ("export", "q2"))
    assert list(both["schemes"]) == ["int8_weight_only"]  # static skipped with a note when others remain
    assert any("int8_static" in n for n in ctx.manifest.data["notes"])
    with pytest.raises(ConfigError, match="int8_static.*seq2seq"):
        ptq.quantize_model(ctx, model, data, ["int8_static"], 4, 2, ("export", "quant"))


def test_a_lowering_failure_is_one_stage_failed_line(run_inproc, monkeypatch):
    from mlx_core import StageFailed

    def broken(*args, **kwargs):
        try:
            raise AssertionError("The same constant data tensor can't be used in NHWC format in one place\nmore")
        except AssertionError as inner:
            raise Exception("An error occurred when running the 'ChannelsLastTaggedReshapePass' pass") from inner

    monkeypatch.setattr(ptq, "lower_executorch", broken)
    with pytest.raises(StageFailed) as info:
        run_inproc("tinyseg", "export", ["train.steps=0", "quant.scheme=int8_static", "quant.eval_examples=1",
                                         "quant.calibration_batches=1"])  # fmt: skip
    msg = str(info.value)
    assert "\n" not in msg and "XNNPACK lowering" in msg and "ChannelsLastTaggedReshapePass" in msg
    assert "NHWC format in one place" in msg


def test_a_source_run_without_loadable_weights_is_recorded_untrained(seg_run, run_inproc, registry, monkeypatch):
    """No checkpoint to load: the model is the source plugin's freshly built one, so quant records
    trained=false (the source run itself says trained=true) and a note says why."""
    import shutil

    import mlx_quant.source

    assert json.loads((seg_run.run_dir / "run.json").read_text())["records"]["trained"] is True
    shutil.rmtree(seg_run.run_dir / "checkpoints")
    monkeypatch.setattr(mlx_quant.source, "source_registry", lambda: registry)
    m = run_inproc("quant", "export", [f"source.run={seg_run.run_dir}", 'source.schemes=["int8_dynamic"]',
                                       "source.calibration_batches=1", "source.eval_examples=1"])  # fmt: skip
    assert m.data["records"]["trained"] is False
    assert "source_weights" not in m.data["records"]
    assert any("untrained weights (trained=false; the source run recorded trained=True)" in n for n in m.data["notes"])


def test_a_model_that_is_not_a_torch_module_is_refused_in_one_line(run_inproc, registry, monkeypatch):
    """recsys hands a dict from its model and train stages: quant says so instead of crashing."""
    import mlx_quant.source

    from mlx_core import DataError

    src = run_inproc("tinyseg", "export", ["train.steps=2", "dict_model=true"])
    monkeypatch.setattr(mlx_quant.source, "source_registry", lambda: registry)
    with pytest.raises(DataError) as info:
        run_inproc("quant", "export", [f"source.run={src.run_dir}", 'source.schemes=["int8_dynamic"]'])
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("quant: tinyseg's model stage hands a dict with keys ['seed']")
    assert "not a torch nn.Module" in msg
    # the hook wrapper on the plugin's own export: the same line, naming what train handed over
    with pytest.raises(DataError, match=r"^quant: tinyseg's model stage hands a dict with keys \['checkpoint'\]"):
        run_inproc("tinyseg", "export", ["train.steps=2", "dict_model=true", "quant.scheme=int8_dynamic"])
