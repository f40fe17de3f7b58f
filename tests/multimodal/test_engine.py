"""multimodal on the shared engine (mlx_torch): one tiny 2-process run (`mlx run --nproc 2`, gloo)
checks together that early stopping ends it at the expected epoch, that bf16 autocast trains on
the CPU and is recorded, and that DDP leaves every rank with the same weights while only rank 0
writes; a rank that raises ends the job in one line; a SIGKILLed worker's run resumes with one
process. A run SIGKILLed and resumed ends with an uninterrupted run's weights bit for bit:
tests/integration/test_reliability.py (every plugin), and the engine's worst instant (checkpoint
written, row not logged) is tests/segmentation/test_interrupts.py. Faults are deterministic (mlx_core.faults kill points, on the rank MLX_TEST_FAULT_RANK names)."""

from __future__ import annotations

import json
import math

import pytest

from mlx_core.testing import run_dir_of, stage_process
from mlx_torch.testing import assert_one_ddp_job

from .conftest import ENV, TINY

NPROC_2 = ("--nproc", "2")


def train(runs, *sets: str, extra: tuple[str, ...] = (), fault: dict[str, str] | None = None):
    """``mlx run multimodal train`` on the CPU (gloo) with the tiny config and ``sets``."""
    return stage_process("multimodal", "train", runs, [*TINY, *sets], *extra, device="cpu",
                         env={**ENV, **(fault or {})}, timeout=600)  # fmt: skip


def manifest(run_dir) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def steps(m: dict) -> list[int]:
    return [h["step"] for h in m["stages"]["train"]["history"]]


@pytest.mark.slow
def test_two_processes_bf16_and_early_stopping_in_one_run(tmp_path):
    # a min_delta no loss can beat: epoch 1 sets the best, epoch 2 does not improve on it and
    # patience 1 ends the run there, 3 epochs before train.epochs
    proc = train(tmp_path, "train.epochs=5", "train.precision=bf16", "train.early_stopping.metric=val_loss",
                 "train.early_stopping.mode=min", "train.early_stopping.patience=1",
                 "train.early_stopping.min_delta=100.0", extra=NPROC_2)  # fmt: skip
    run_dir = run_dir_of(proc)
    m = manifest(run_dir)
    train_stage = m["stages"]["train"]
    # early stopping after epoch 2, logged once per epoch by rank 0 (epoch 0: before training)
    assert steps(m) == [0, 1, 2]
    metrics = train_stage["metrics"]
    assert metrics["epochs"] == 2 and 0 <= metrics["final_val_vqa_acc"] <= 1 and 0 <= metrics["final_val_acc"] <= 1
    assert {"majority_baseline", "question_only_baseline", "best_val_acc"} <= set(metrics)
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt")) == ["epoch-001.pt", "epoch-002.pt"]
    assert (run_dir / "train" / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert m["records"]["trained"] is True
    # bf16 on the CPU trained (finite losses) and is recorded
    assert m["config"]["train"]["precision"] == "bf16"
    engine = m["records"]["engine"]
    assert engine["precision"] == "bf16" and engine["stopped_early_after_epoch"] == 2
    assert all(math.isfinite(r["train_loss"]) and 0 <= r["val_acc"] <= 1 for r in train_stage["history"][1:])
    # the recipe's schedule: 10 % linear warm-up (1 of 5 epochs x 3 steps), then cosine from the peak
    assert 0 < train_stage["history"][1]["lr"] <= m["config"]["train"]["lr"]
    # two DDP ranks: one run.json (rank 0's) with world size 2, equal weights on both ranks
    assert_one_ddp_job(m, run_dir, nproc=2)


@pytest.mark.slow
def test_a_rank_that_raises_ends_the_run_in_one_line(tmp_path):
    from mlx_core.testing_launch import assert_a_raising_rank_ends_the_job

    assert_a_raising_rank_ends_the_job(
        "multimodal", tmp_path, [*TINY, "train.epochs=2"], point="multimodal:epoch_start:1"
    )


@pytest.mark.slow
def test_a_killed_worker_resumes_with_one_process(tmp_path):
    """Rank 1 dies by SIGKILL as epoch 2 starts, after epoch 1's checkpoint (rank 0 wrote it before
    the collective that let rank 1 go on): `--from` with one process continues from it."""
    fault = {"MLX_TEST_SIGKILL": "multimodal:epoch_start:2", "MLX_TEST_FAULT_RANK": "1"}
    proc = train(tmp_path, "train.epochs=2", extra=NPROC_2, fault=fault)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "rank 1 died (killed by signal 9 (SIGKILL))" in proc.stderr.splitlines()[-1]
    (run_dir,) = (tmp_path / "multimodal").iterdir()
    resumed = stage_process("multimodal", "train", tmp_path, [], "--from", str(run_dir), device="cpu", env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from checkpoints/epoch-001.pt (epoch 1 of 2)" in resumed.stderr
    m = manifest(run_dir)
    assert m["stages"]["train"]["status"] == "completed" and steps(m) == [0, 1, 2]
    assert m["records"]["engine"]["world_size"] == 1


@pytest.mark.slow
def test_two_nodes_on_loopback_form_one_job(tmp_path):
    from mlx_core.testing_launch import assert_two_nodes_on_loopback_form_one_job

    # each node trains its own WordPiece vocabulary from the generated questions: at 400 there is
    # no merge left to choose, so both nodes get the same one (docs/scale-out.md: pass the same
    # data.tokenizer on real machines)
    assert_two_nodes_on_loopback_form_one_job("multimodal", tmp_path, [*TINY, "data.wordpiece_vocab_size=400"])
