"""segmentation on the shared engine (mlx_torch): one tiny 2-process run (`mlx run --nproc 2`,
gloo) checks together that early stopping ends it at the expected epoch, that bf16 autocast
trains on the CPU and is recorded, and that DDP leaves every rank with the same weights while
only rank 0 writes. The resume-to-identical-weights check is test_interrupts.py."""

from __future__ import annotations

import json
import math

from mlx_torch.testing import assert_one_ddp_job

from .seg_helpers import run, run_dir_of


def test_two_processes_bf16_and_early_stopping_in_one_run(tmp_path):
    # a min_delta no loss can beat: epoch 1 sets the best, epoch 2 does not improve on it and
    # patience 1 ends the run there, 3 epochs before train.epochs
    proc = run("train", tmp_path, "train.epochs=5", "train.precision=bf16",
               "train.early_stopping.metric=val_loss", "train.early_stopping.mode=min",
               "train.early_stopping.patience=1", "train.early_stopping.min_delta=100.0",
               extra=("--nproc", "2"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = run_dir_of(proc)
    m = json.loads((run_dir / "run.json").read_text())
    train = m["stages"]["train"]
    # early stopping, logged once per epoch by rank 0
    assert [r["step"] for r in train["history"]] == [0, 1, 2]
    assert train["metrics"]["epochs"] == 2
    assert "(early stopping after epoch 2)" in " ".join(m["notes"])
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt")) == ["epoch-001.pt", "epoch-002.pt"]
    # bf16 on the CPU trained (finite losses) and is recorded
    assert m["config"]["train"]["precision"] == "bf16"
    engine = m["records"]["engine"]
    assert engine["precision"] == "bf16" and engine["stopped_early_after_epoch"] == 2
    assert all(math.isfinite(r["train_loss"]) for r in train["history"][1:])
    # two DDP ranks: one run.json (rank 0's) with world size 2, equal weights on both ranks
    assert engine["library"].startswith("pytorch-ignite 0.5")
    assert_one_ddp_job(m, run_dir, nproc=2)
    assert (
        "early stopping after epoch 2: val_loss did not improve for 1 epochs"
        in (run_dir / "logs" / "rank-0.log").read_text()
    )
