"""End to end through the CLI on a small generated set: train beats the majority answer,
export reloads with parity, predict prints top-5 answers, --from resumes training."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlx_core.runs import Manifest

from .conftest import DEVICE, SMALL, error_line, mlx, run, run_dir_of, stage_ctx, write_vqa


def test_training_beats_the_majority_answer(exported):
    m = Manifest.load(exported).data
    metrics = m["stages"]["train"]["metrics"]
    assert m["records"]["trained"] is True
    assert metrics["final_val_acc"] > metrics["majority_baseline"] + 0.08, metrics
    history = m["stages"]["train"]["history"]
    assert [h["step"] for h in history] == [0, 1, 2, 3]  # epoch 0: before training
    assert 0 <= metrics["final_val_vqa_acc"] <= 1 and 0 < metrics["question_only_baseline"] < 1
    png = exported / "train" / "curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_parity_and_files_beside_the_program(exported):
    m = Manifest.load(exported).data
    ex = m["stages"]["export"]["metrics"]
    assert ex["export_max_abs_diff"] < 1e-4 and ex["export_top1_agreement"] == 1.0
    for name in ("model.pt2", "answers.txt", "preprocess.json", "tokenizer/vocab.txt", "tokenizer/tokenizer.json"):
        assert (exported / "export" / name).is_file(), name
    pre = json.loads((exported / "export" / "preprocess.json").read_text())
    assert pre["image_size"] == 32 and pre["max_length"] == 16
    program = [a for a in m["artifacts"] if a["path"] == "export/model.pt2"]
    assert program and program[0]["format"] == "torch.export" and program[0]["size"] > 0


def test_reload_needs_no_training_code(exported):
    img = sorted((exported / "data" / "shapes" / "images").glob("val_*.png"))[0]
    code = f"""
import sys
from mlx_multimodal.predict import Predictor
p = Predictor({str(exported / "export")!r})
top = p.top_k({str(img)!r}, "how many objects are there?", 3)
assert len(top) == 3 and abs(sum(q for _, q in top)) <= 1.0001, top
loaded = [m for m in sys.modules if m.startswith(("torchmultimodal", "mlx_multimodal.model", "mlx_multimodal.train"))]
print("LOADED", loaded)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LOADED []" in out.stdout


def test_predict_prints_top5_answers(exported):
    img = sorted((exported / "data" / "shapes" / "images").glob("val_*.png"))[1]
    proc = mlx(
        "predict", "multimodal", str(exported), str(img), "what color is the circle?", "--json", "--device", DEVICE
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    probs = [r["probability"] for r in rows]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    answers = (exported / "export" / "answers.txt").read_text().splitlines()
    assert all(r["answer"] in answers for r in rows)


def test_stopped_then_resumed_run_equals_the_uninterrupted_one(exported, tmp_path):
    """Stop after epoch 1 (train.max_minutes), resume with --from: the same run as without the stop."""
    import torch

    runs = tmp_path / "runs"
    first = run_dir_of(run(runs, "train", [*SMALL, "train.max_minutes=0.0001"]))
    stopped = Manifest.load(first).data
    assert [h["step"] for h in stopped["stages"]["train"]["history"]] == [0, 1]
    assert any("stopped after epoch 1: train.max_minutes=0.0001 reached" in n for n in stopped["notes"])
    assert stopped["records"]["engine"]["stopped_early_after_epoch"] is None  # a time budget, not early stopping
    resumed_proc = run(runs, "train", ["train.max_minutes=0"], "--from", str(first))
    assert run_dir_of(resumed_proc) == first
    assert "resuming from checkpoints/epoch-001.pt (epoch 1 of 3)" in resumed_proc.stderr
    resumed = Manifest.load(first).data
    history = resumed["stages"]["train"]["history"]
    assert [h["step"] for h in history] == [0, 1, 2, 3]  # epoch 1 was not trained again
    clean = Manifest.load(exported).data["stages"]["train"]["history"]
    for got, want in zip(history, clean, strict=True):
        for key in {"train_loss", "val_loss", "val_acc"} & set(want):  # epoch 0 has no train_loss
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), (got["step"], key)
    a = torch.load(first / "checkpoints" / "epoch-003.pt", weights_only=True)["model"]
    b = torch.load(exported / "checkpoints" / "epoch-003.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in b)  # bit for bit


def test_predict_bad_inputs(exported, tmp_path):
    line = error_line(
        mlx("predict", "multimodal", str(exported), str(tmp_path / "no.png"), "what?", "--device", DEVICE)
    )
    assert "no.png does not exist" in line
    line = error_line(mlx("predict", "multimodal", str(exported), "only-an-image.png", "--device", DEVICE))
    assert "pairs of IMAGE QUESTION" in line
    (tmp_path / "half.png").write_bytes((exported / "train" / "curve.png").read_bytes()[:300])
    line = error_line(
        mlx("predict", "multimodal", str(exported), str(tmp_path / "half.png"), "what?", "--device", DEVICE)
    )
    assert "half.png is unreadable" in line


def test_export_of_a_one_record_held_out_split(tmp_path, colour_records):
    """In process: a held-out split of one record still exports with a dynamic batch."""
    from mlx_multimodal.data import build_data
    from mlx_multimodal.export import export
    from mlx_multimodal.model import build_model

    recs, images = colour_records
    folder = write_vqa(tmp_path / "vqa", recs, images)
    (folder / "val.jsonl").write_text(json.dumps(recs[1]) + "\n")
    ctx = stage_ctx(tmp_path, path=str(folder), model={"hidden_size": 16, "image_layers": 1, "text_layers": 1})
    data = build_data(ctx)
    assert len(data.val) == 1
    ctx.stage = "model"
    model = build_model(ctx, data)
    ctx.stage = "export"
    out = export(ctx, data, model)
    assert out["max_abs_diff"] < 1e-4
    assert ctx.manifest.data["records"]["trained"] is False
