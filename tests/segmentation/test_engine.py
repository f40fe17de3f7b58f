"""segmentation on the shared engine (mlx_torch): one tiny run checks early stopping and bf16
autocast on the CPU together (the resume-to-identical-weights check is test_interrupts.py)."""

from __future__ import annotations

import json
import math

from .seg_helpers import run, run_dir_of


def test_early_stopping_stops_at_the_expected_epoch_and_bf16_is_recorded(tmp_path):
    # a min_delta no loss can beat: epoch 1 sets the best, epoch 2 does not improve on it and
    # patience 1 ends the run there, 3 epochs before train.epochs
    proc = run("train", tmp_path, "train.epochs=5", "train.precision=bf16",
               "train.early_stopping.metric=val_loss", "train.early_stopping.mode=min",
               "train.early_stopping.patience=1", "train.early_stopping.min_delta=100.0")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "early stopping after epoch 2: val_loss did not improve for 1 epochs" in proc.stderr
    run_dir = run_dir_of(proc)
    m = json.loads((run_dir / "run.json").read_text())
    train = m["stages"]["train"]
    assert [r["step"] for r in train["history"]] == [0, 1, 2]
    assert train["metrics"]["epochs"] == 2
    assert m["config"]["train"]["precision"] == "bf16"
    engine = m["records"]["engine"]
    assert engine["precision"] == "bf16" and engine["stopped_early_after_epoch"] == 2
    assert engine["world_size"] == 1 and engine["library"].startswith("pytorch-ignite 0.5")
    assert all(math.isfinite(r["train_loss"]) for r in train["history"][1:])  # bf16 trained
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt")) == ["epoch-001.pt", "epoch-002.pt"]
    assert "(early stopping after epoch 2)" in " ".join(m["notes"])
