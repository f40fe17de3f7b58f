"""custom_ops' torch RedNet on the shared engine (mlx_torch): one tiny 2-process run (`mlx run
--nproc 2`, gloo) checks together that early stopping ends it at the expected epoch, that bf16
autocast trains on the CPU and is recorded, and that DDP leaves every rank with the same weights
while only rank 0 writes. The engine's own resume-to-identical-weights check is tests/torch."""

from __future__ import annotations

import json
import math

import pytest

from mlx_core.testing import run_dir_of, stage_process
from mlx_torch.testing import assert_one_ddp_job

from .conftest import TINY


@pytest.mark.slow
def test_torch_rednet_two_processes_bf16_and_early_stopping_in_one_run(tmp_path):
    # a min_delta no loss can beat: epoch 1 sets the best, epoch 2 does not improve on it and
    # patience 1 ends the run there, 3 epochs before train.epochs
    sets = [*TINY, "model.backend=torch", "model.impl=composite", "train.epochs=5", "train.precision=bf16",
            "train.early_stopping.metric=val_loss", "train.early_stopping.mode=min",
            "train.early_stopping.patience=1", "train.early_stopping.min_delta=100.0"]  # fmt: skip
    proc = stage_process("custom_ops", "train", tmp_path, sets, "--nproc", "2", device="cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = run_dir_of(proc)
    m = json.loads((run_dir / "run.json").read_text())
    train = m["stages"]["train"]
    # early stopping after epoch 2, logged once per epoch by rank 0 (epoch 0: before training)
    assert [r["step"] for r in train["history"]] == [0, 1, 2]
    assert train["metrics"]["epochs"] == 2 and 0 <= train["metrics"]["val_acc"] <= 1
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt")) == ["epoch-001.pt", "epoch-002.pt"]
    assert m["records"]["trained"] is True
    assert (run_dir / "train" / "curve.png").read_bytes()[:4] == b"\x89PNG"
    # bf16 on the CPU trained (finite losses) and is recorded
    assert m["config"]["train"]["precision"] == "bf16"
    engine = m["records"]["engine"]
    assert engine["precision"] == "bf16" and engine["stopped_early_after_epoch"] == 2
    assert all(math.isfinite(r["train_loss"]) and 0 <= r["val_acc"] <= 1 for r in train["history"][1:])
    # two DDP ranks: one run.json (rank 0's) with world size 2, equal weights on both ranks
    assert_one_ddp_job(m, run_dir, nproc=2)
