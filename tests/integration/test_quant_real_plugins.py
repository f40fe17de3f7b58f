"""quant on the real segmentation and translation plugins (not a stand-in network): its hook wrapper
adds a quantized artifact to their own exports, with the size, speed and quality figures and the
quality gate's verdict in their run.json. The figures in plugins/quant/README.md ("Real plugins")
come from these runs; the assertions below are what they are held to."""

from __future__ import annotations

import json

from mlx_core.testing import run_dir_of, stage_process

# tiny runs: the figures measure quantization of the real architectures, not trained quality
SEGMENTATION = ["data.image_size=32", "export.rewrite_padding_taps=false", "data.sample_train=8", "data.sample_val=4", "train.batch_size=4",
                "train.epochs=1", 'export.formats=["executorch"]', "quant.scheme=int8_static",
                "quant.calibration_batches=4", "quant.eval_examples=4"]  # fmt: skip
TRANSLATION = ["data.size=120", "data.vocab_size=150", "model.d_model=32", "model.d_ff=64", "model.num_heads=2",
               "model.num_layers=1", "train.epochs=1", "train.batch_size=16", "train.eval_samples=8",
               "train.generation_max_length=16", "export.torch_export=false", "export.parity_samples=4",
               "quant.scheme=int8_dynamic", "quant.eval_examples=8"]  # fmt: skip


def run(plugin: str, sets: list[str], tmp_path) -> dict:
    proc = stage_process(plugin, "export", tmp_path / "runs", sets, device="cpu", timeout=1800)
    run_dir = run_dir_of(proc)
    return json.loads((run_dir / "run.json").read_text()) | {"_dir": str(run_dir)}


def print_figures(plugin: str, rec: dict) -> None:
    """The README's table rows (pytest -s shows them)."""
    print(f"\n{plugin} {json.dumps(rec, sort_keys=True)}")


def test_pt2e_int8_static_of_the_real_segmentation_model(tmp_path):
    m = run("segmentation", SEGMENTATION, tmp_path)
    rec = m["records"]["quant"]
    print_figures("segmentation", rec)
    assert m["records"]["model"]["arch"] == "deeplabv3_mobilenet_v3_large"
    assert rec["scheme"] == "int8_static" and rec["path"] == "export/quant/int8_static.pte"
    assert rec["baseline"].startswith("fp32 .pte (model.pte")  # the plugin's own fp32 ExecuTorch export
    assert rec["size_ratio"] < 0.30  # int8 weights: about a quarter of the fp32 program
    q = rec["quality"]
    assert q["metric"] == "mIoU" and q["argmax_agreement"] > 0.95 and q["relative_error"] < 0.05
    gate = m["records"]["quant_gate"]["int8_static"]
    assert gate["passed"] is True and gate["limit_key"] == "quant.max_miou_drop" and gate["change"] <= 0.05
    arts = {a["path"]: a for a in m["artifacts"]}
    assert arts["export/quant/int8_static.pte"]["kind"] == "quantized" and "export/model.pte" in arts


def test_torchao_int8_dynamic_of_the_real_translation_model(tmp_path):
    m = run("translation", TRANSLATION, tmp_path)
    rec = m["records"]["quant"]
    print_figures("translation", rec)
    assert rec["scheme"] == "int8_dynamic" and rec["quantized_linear_layers"] > 0
    assert rec["size_ratio"] < 1  # the Linear weights in int8; the embeddings stay fp32
    q = rec["quality"]
    assert q["metric"] == "BLEU" and 0 <= q["identical_outputs"] <= 1
    gate = m["records"]["quant_gate"]["int8_dynamic"]
    assert gate["metric"] == "BLEU" and gate["passed"] is True and gate["limit_key"] == "quant.max_bleu_drop"
