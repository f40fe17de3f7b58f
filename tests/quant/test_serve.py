"""`mlx serve` / `mlx predict` of quant's finished language-model runs, in process: the int8 export
with LoRA adapters and a 4-bit nf4 export without; texts in, greedy continuations and perplexities
out (the perplexities the export's report measured), quant-specific bad input as one JSON error
(the server keeps serving), and a post-training run of another plugin's model refused in one line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="mlx-core[serve] not installed")

from mlx_quant.data import read_texts

from mlx_core import RunError
from mlx_core.plugins import Registry
from mlx_core.testing import cli, one_line_error, run_in_process
from mlx_core.testing_serve import predict_in_process, served_in_process

from .conftest import DEVICE, TINY

TEXTS = ["The quick brown fox", "A cat sat on the mat."]
LIMIT = 512  # the generated OPT model's max_position_embeddings
BAD = [
    ("an empty text", {"texts": ["fine", ""]}, 422, "at least 1 character"),
    ("a text over the length limit", {"texts": ["x" * 600], "mode": "perplexity"}, 400,
     "600 tokens, over the model's length limit of 512"),
    ("a text + max_new_tokens over the limit", {"texts": ["x" * 500], "max_new_tokens": 20}, 400,
     "500 tokens + max_new_tokens 20 = 520, over the model's length limit of 512"),
    ("max_new_tokens 0", {"texts": ["abc"], "max_new_tokens": 0}, 422, "greater than or equal to 1"),
    ("max_new_tokens over the limit", {"texts": ["abc"], "max_new_tokens": LIMIT}, 422, "less than or equal to 511"),
    ("one token to score", {"texts": ["a"], "mode": "perplexity"}, 400, "its perplexity needs at least 2"),
    ("an unknown mode", {"texts": ["abc"], "mode": "sample"}, 422, "mode"),
    ("too many texts", {"texts": ["abc"] * 65}, 422, "at most 64"),
]  # fmt: skip


def export_lm(tmp_path_factory, name: str, *sets: str):
    runs = tmp_path_factory.mktemp(name) / "runs"
    m = run_in_process(Registry(), "quant", "export", runs, [*TINY, *sets], device=DEVICE)
    return m.run_dir


@pytest.fixture(scope="module")
def int8_lora_run(tmp_path_factory) -> Path:
    """A finished int8 export of the tiny random LM with LoRA adapters (1 epoch)."""
    return export_lm(tmp_path_factory, "int8", "train.epochs=1", "train.batch_size=8")


def eval_texts(run: Path) -> list[str]:
    """The report's evaluation windows as texts (generated corpus, byte tokenizer, as the model stage cuts them)."""
    docs = read_texts(run / "data" / "corpus.txt")
    joined = "\n".join(docs[-max(1, round(len(docs) * 0.25)) :]).encode()
    seq, n = 32, 4  # TINY's data.seq_len and data.max_eval_windows
    assert len(joined) >= seq * n
    return [joined[i * seq : (i + 1) * seq].decode("ascii") for i in range(n)]


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def test_serves_continuations_and_the_perplexities_of_the_quantized_model(int8_lora_run, tmp_path):
    run = int8_lora_run
    report = json.loads((run / "export" / "report.json").read_text())
    windows = eval_texts(run)
    with served_in_process(run) as client:
        info = client.get("/info").json()
        assert info["format"] == "lora" and info["precision"] == "int8"
        assert info["linear_layers"]["Linear8bitLt"] == 12  # 2 layers x (q, k, v, out, fc1, fc2), as exported
        assert info["quantization_config"]["load_in_8bit"] is True
        recorded = {a["path"]: a["sha256"] for a in json.loads((run / "run.json").read_text())["artifacts"]}
        loaded = {a["path"]: a["sha256"] for a in info["artifacts"]}
        # every file of both exported folders, each with the sha256 run.json recorded
        files = {str(p.relative_to(run)) for d in ("model", "adapter") for p in (run / "export" / d).iterdir()}
        assert files == set(loaded) and {"export/model/model.safetensors", "export/model/mlx_byte_tokenizer.txt",
                                         "export/adapter/adapter_config.json"} <= files  # fmt: skip
        assert all(recorded[p] == h for p, h in loaded.items())
        r = client.post("/predict", json={"texts": TEXTS, "mode": "both", "max_new_tokens": 8})
        assert r.status_code == 200, r.text
        served = r.json()
        assert served["mode"] == "both" and served["format"] == "lora"
        assert [x["text"] for x in served["results"]] == TEXTS and [x["tokens"] for x in served["results"]] == [19, 21]
        assert all(x["generated"] is not None and 1 < x["perplexity"] < 1e4 for x in served["results"])
        # the perplexity of the export's evaluation windows is the one its report measured (with the adapters)
        lora = client.post("/predict", json={"texts": windows, "mode": "perplexity"}).json()["results"]
        assert all(x["generated"] is None for x in lora)
        assert geometric_mean([x["perplexity"] for x in lora]) == pytest.approx(
            report["perplexity"]["after_lora"], rel=1e-4
        )
        page = client.get("/").text
        assert 'name="texts"' in page and 'name="max_new_tokens"' in page and 'name="mode"' in page
        spec = client.get("/openapi.json").json()
        content = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
        assert content["examples"]["example 1"]["value"]["mode"] == "generate"
        for what, body, status, words in BAD:
            bad = client.post("/predict", json=body)
            assert bad.status_code == status, (what, bad.text)
            assert list(bad.json()) == ["error"] and words in bad.json()["error"], (what, bad.json())
            assert client.get("/health").json()["status"] == "ok", what
    with served_in_process(run, fmt="base") as client:  # the quantized base alone: the report's int8 figure
        base = client.post("/predict", json={"texts": windows, "mode": "perplexity"}).json()["results"]
        assert geometric_mean([x["perplexity"] for x in base]) == pytest.approx(report["perplexity"]["after"], rel=1e-4)
    lines = tmp_path / "texts.txt"  # a file: one text per non-empty line
    lines.write_text(f"{TEXTS[0]}\n\n{TEXTS[1]}\n")
    rows = predict_in_process("quant", run, [str(lines)], "predict.mode=both", "predict.max_new_tokens=8")
    assert rows == [{k: v for k, v in x.items() if v is not None} for x in served["results"]]
    (written,) = (run / "predictions").glob("*/predictions.jsonl")
    assert [json.loads(line) for line in written.read_text().splitlines()] == [
        {**r, "mode": "both", "format": "lora"} for r in rows
    ]


def test_a_4bit_export_without_adapters_serves_its_base(tmp_path_factory):
    run = export_lm(tmp_path_factory, "nf4", "model.load_in_8bit=false", "model.load_in_4bit=true",
                    "model.hidden_size=64", "model.ffn_dim=64", "train.epochs=0")  # fmt: skip
    report = json.loads((run / "export" / "report.json").read_text())
    with served_in_process(run) as client:
        info = client.get("/info").json()
        assert info["format"] == "base" and info["precision"] == "4-bit nf4"
        assert info["linear_layers"]["Linear4bit"] == 12
        res = client.post("/predict", json={"texts": eval_texts(run), "mode": "perplexity"}).json()["results"]
        # bitsandbytes' CPU kernels repack the 4-bit scales at the first forward pass (export.max_abs_diff_4bit)
        assert geometric_mean([x["perplexity"] for x in res]) == pytest.approx(report["perplexity"]["after"], rel=1e-2)
        gen = client.post("/predict", json={"texts": TEXTS[:1], "max_new_tokens": 4}).json()
        assert gen["mode"] == "generate" and gen["results"][0]["perplexity"] is None
    with pytest.raises(RunError, match=r"exported no LoRA adapters \(train.epochs=0\); .*--format base"):
        with served_in_process(run, fmt="lora"):
            pass


def test_a_post_training_run_of_another_plugins_model_is_refused_in_one_line(run_inproc, registry, monkeypatch):
    import mlx_quant.source

    monkeypatch.setattr(mlx_quant.source, "source_registry", lambda: registry)
    seg = run_inproc("tinyseg", "export", ["train.steps=1"])
    m = run_inproc("quant", "export", [f"source.run={seg.run_dir}", "source.schemes=[\"int8_weight_only\"]",
                                       "source.calibration_batches=1", "source.eval_examples=1"])  # fmt: skip
    line = one_line_error(cli("serve", str(m.run_dir), "--port", "0"), "int8_weight_only.pt", "mlx serve")
    assert "not a language model quant serves" in line and f"source.run={seg.run_dir}" in line
    with pytest.raises(RunError, match="not a language model quant serves"):
        predict_in_process("quant", m.run_dir, ["some text"])
