"""The bitsandbytes path: stages end to end, 8-bit / 4-bit / fp32 CPU offload, reload, report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlx_quant.data import read_texts
from mlx_quant.model import matches
from mlx_quant.sample import generate_corpus

from mlx_core.testing import PluginConformance

from .conftest import DEVICE, TINY, run_quant


@pytest.mark.lowest_core  # nox <plugin>-lowest-core runs these against the lowest core declared
class TestConformance(PluginConformance):
    plugin = "quant"
    overrides = ["data.documents=16"]


def test_import_and_description_import_no_heavy_library():
    code = (
        "import sys, mlx_quant; info = mlx_quant.mlx_plugin(); assert info.options is not None; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'transformers', 'bitsandbytes', 'peft', 'torchao', 'executorch', 'accelerate')]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_generated_corpus_is_deterministic_and_read_back(tmp_path):
    docs = generate_corpus(10, seed=3)
    assert docs == generate_corpus(10, seed=3) and docs != generate_corpus(10, seed=4)
    p = tmp_path / "c.txt"
    p.write_text("\n".join(docs) + "\n\n")
    assert read_texts(p) == docs


def test_jsonl_reader(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text('{"text": "one doc"}\n\n{"text": "two docs", "id": 2}\n')
    assert read_texts(p) == ["one doc", "two docs"]
    assert read_texts(tmp_path / "c.jsonl", "text")
    from mlx_core import DataError

    p.write_text('{"body": "x"}\n{"text": "y"}\n')
    with pytest.raises(DataError, match=r"c.jsonl:1: .*'text'"):
        read_texts(p)


def test_skip_module_matching_follows_transformers():
    assert matches("lm_head", "lm_head")
    assert matches("fc2", "model.decoder.layers.1.fc2")
    assert matches("model.decoder.layers.1", "model.decoder.layers.1.fc1")
    assert not matches("model.decoder.layers.1", "model.decoder.layers.11.fc1")
    assert not matches("fc", "model.decoder.layers.1.fc1")


def test_int8_with_lora_end_to_end(tmp_path):
    runs = tmp_path / "runs"
    proc = run_quant(runs, "export", "train.epochs=1", "train.batch_size=4", "data.documents=8")
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = Path(proc.stdout.strip().splitlines()[-1])
    manifest = json.loads((run / "run.json").read_text())
    assert all(manifest["stages"][s]["status"] == "completed" for s in ("data", "model", "train", "export"))
    assert manifest["records"]["trained"] is False  # the generated model is random: it says so
    report = json.loads((run / "export" / "report.json").read_text())
    assert report["precision"] == "int8"
    fp = report["memory_footprint_bytes"]
    assert fp["after"] < fp["before"]
    assert report["linear_weight_bytes"]["ratio"] <= 0.3  # int8 + per-row fp32 scales
    assert report["linear_weight_bytes"]["quantized_layers"] == 12  # 2 layers x (q, k, v, out, fc1, fc2)
    ppl = report["perplexity"]
    assert 1 < ppl["before"] < 1e4 and abs(ppl["after"] - ppl["before"]) / ppl["before"] < 0.05
    assert ppl["after_lora"] is not None
    gate = manifest["records"]["quant_gate"]["int8"]  # quantization alone, judged by the perplexity gate
    assert gate["metric"] == "perplexity" and gate["passed"] is True and gate == report["gate"]
    assert gate["limit_key"] == "gate.max_perplexity_rise" and gate["change"] == pytest.approx(
        ppl["after"] / ppl["before"] - 1
    )
    assert report["reload"]["max_abs_logit_diff"] <= 1e-4
    assert (run / "export" / "report.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((run / "export" / "model" / "config.json").read_text())
    assert saved["quantization_config"]["load_in_8bit"] is True
    assert (run / "export" / "adapter" / "adapter_config.json").is_file()
    kinds = {a["kind"] for a in manifest["artifacts"]}
    assert {"dataset", "model", "model-weights", "adapter", "report", "chart", "checkpoint"} <= kinds
    hist = manifest["stages"]["train"]["history"]
    assert [h["step"] for h in hist] == [0, 1]  # epoch 0: the quantized model before LoRA
    assert manifest["stages"]["train"]["metrics"]["epochs"] == 1

    # the exported folder reloads as int8 with no quantization arguments at all
    import torch
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(run / "export" / "model")
    assert type(m.model.decoder.layers[0].fc1).__name__ == "Linear8bitLt"
    assert m(torch.zeros(1, 8, dtype=torch.long)).logits.shape == (1, 8, 256)

    # --from resumes LoRA from the last epoch checkpoint and reuses the generated corpus
    corpus = (run / "data" / "corpus.txt").read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "mlx_core", "run", "quant", "train", "--from", str(run), "--device", DEVICE,
         "--set", "train.epochs=2"], capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming from checkpoints/epoch-001.pt (epoch 1 of 2)" in proc.stderr
    assert (run / "data" / "corpus.txt").read_bytes() == corpus
    hist = json.loads((run / "run.json").read_text())["stages"]["train"]["history"]
    assert [h["step"] for h in hist] == [0, 1, 2]


@pytest.mark.parametrize("qtype", ["nf4", "fp4"])
def test_4bit_in_process(run_inproc, qtype):
    m = run_inproc("quant", "export", [*TINY, "model.load_in_8bit=false", "model.load_in_4bit=true",
                                       f"model.bnb_4bit_quant_type={qtype}", "model.bnb_4bit_use_double_quant=true",
                                       f"train.epochs={1 if qtype == 'nf4' else 0}", "data.documents=8",
                                       "model.hidden_size=64", "model.ffn_dim=128"])  # fmt: skip
    report = json.loads((m.run_dir / "export" / "report.json").read_text())
    assert report["precision"] == f"4-bit {qtype}"
    assert report["linear_weight_bytes"]["ratio"] <= 0.2
    assert report["memory_footprint_bytes"]["after"] < report["memory_footprint_bytes"]["before"]
    assert report["reload"]["max_abs_logit_diff"] <= report["reload"]["allowed"]
    if qtype == "nf4":  # LoRA adapters on the frozen 4-bit base, saved beside it
        assert report["perplexity"]["after_lora"] is not None
        assert (m.run_dir / "export" / "adapter" / "adapter_config.json").is_file()
    else:
        assert report["perplexity"]["after_lora"] is None
    saved = json.loads((m.run_dir / "export" / "model" / "config.json").read_text())["quantization_config"]
    assert saved["bnb_4bit_quant_type"] == qtype and saved["bnb_4bit_use_double_quant"] is True


def test_fp32_cpu_offload_keeps_named_modules_in_float32(tmp_path):
    import torch
    from mlx_quant.config import ModelConfig
    from mlx_quant.model import create_default_model, device_map, load_model, portable_quantization_config
    from transformers import AutoModelForCausalLM

    cfg = ModelConfig(hidden_size=32, ffn_dim=64, llm_int8_enable_fp32_cpu_offload=True,
                      cpu_fp32_modules=["model.decoder.layers.1"])  # fmt: skip
    folder = create_default_model(tmp_path / "base", cfg, seed=0)
    m = load_model(folder, cfg, "cpu")
    layers = m.model.decoder.layers
    assert type(layers[0].fc1).__name__ == "Linear8bitLt"
    assert type(layers[1].fc1) is torch.nn.Linear and layers[1].fc1.weight.dtype == torch.float32
    portable_quantization_config(m)
    m.save_pretrained(tmp_path / "q")
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "q")
    assert type(again.model.decoder.layers[0].fc1).__name__ == "Linear8bitLt"
    assert type(again.model.decoder.layers[1].fc1) is torch.nn.Linear
    ids = torch.arange(16)[None]
    with torch.no_grad():
        assert torch.allclose(again(ids).logits, m(ids).logits, atol=1e-5)

    names = ["a", "a.x", "a.y", "a.y.0", "a.y.1", "b"]
    dm = device_map(names, ["a.y.1"], "cpu")
    assert dm == {"a.x": torch.device("cpu"), "a.y.0": torch.device("cpu"), "a.y.1": "cpu", "b": torch.device("cpu")}
