"""quant's LoRA on the shared engine (mlx_torch.fit): a 2-process run (`mlx run quant train
--nproc 2`, gloo, DDP over the adapters of the frozen int8 model) with bf16 and early stopping;
a rank that raises; a killed worker resumed with one process; a run killed after an epoch and
resumed ending with the same adapters as an uninterrupted one. Faults are deterministic
(mlx_core.faults: MLX_TEST_SIGKILL / MLX_TEST_RAISE at a named instant of the engine, on the
rank MLX_TEST_FAULT_RANK names)."""

from __future__ import annotations

import json
import math
import os
import signal

import pytest

from mlx_core.testing import run_dir_of, stage_process
from mlx_torch.testing import assert_one_ddp_job

from .conftest import DEVICE, TINY

# 8 documents: about 22 training windows of 32 tokens, 5 steps of 4 an epoch
SMALL = [s for s in TINY if not s.startswith("data.documents=")] + ["data.documents=8"]
NPROC_2 = ("--nproc", "2")


def quant(runs, *sets: str, extra: tuple[str, ...] = (), env: dict[str, str] | None = None):
    return stage_process("quant", "train", runs, [*SMALL, *sets], *extra, device=DEVICE,
                         env={**os.environ, **(env or {})})  # fmt: skip


def adapters(run_dir, epoch: int):
    import torch

    return torch.load(run_dir / "checkpoints" / f"epoch-{epoch:03d}.pt", weights_only=True)


@pytest.mark.slow
def test_two_processes_bf16_and_early_stopping_in_one_run(tmp_path):
    # a min_delta no loss can beat: epoch 1 sets the best, epoch 2 does not improve on it and
    # patience 1 ends the run there, 3 epochs before train.epochs
    proc = quant(tmp_path, "train.epochs=5", "train.precision=bf16", "train.early_stopping.metric=val_loss",
                 "train.early_stopping.mode=min", "train.early_stopping.patience=1",
                 "train.early_stopping.min_delta=100.0", extra=NPROC_2)  # fmt: skip
    run_dir = run_dir_of(proc)
    m = json.loads((run_dir / "run.json").read_text())
    train = m["stages"]["train"]
    assert [r["step"] for r in train["history"]] == [0, 1, 2]
    assert train["metrics"]["epochs"] == 2
    assert "(early stopping after epoch 2)" in " ".join(m["notes"])
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt")) == ["epoch-001.pt", "epoch-002.pt"]
    # bf16 autocast over the int8 layers trained (finite losses) and is recorded
    engine = m["records"]["engine"]
    assert m["config"]["train"]["precision"] == "bf16" and engine["precision"] == "bf16"
    assert engine["stopped_early_after_epoch"] == 2
    assert all(math.isfinite(r["train_loss"]) and r["val_perplexity"] > 1 for r in train["history"][1:])
    # the checkpoints hold the adapters only, not the frozen int8 base
    keys = list(adapters(run_dir, 2)["model"])
    assert keys and all("lora_" in k for k in keys)
    assert m["records"]["lora"]["epochs"] == 2
    # two DDP ranks: one run.json (rank 0's) with world size 2, the same weights (adapters included)
    assert_one_ddp_job(m, run_dir, nproc=2)


@pytest.mark.slow
def test_a_rank_that_raises_ends_the_run_in_one_line(tmp_path):
    from mlx_core.testing_launch import assert_a_raising_rank_ends_the_job

    assert_a_raising_rank_ends_the_job(
        "quant", tmp_path, [*SMALL, "train.epochs=2"], DEVICE, point="quant:epoch_start:1"
    )


@pytest.mark.slow
def test_a_killed_worker_resumes_with_one_process(tmp_path):
    # rank 1 dies as epoch 2 starts: epoch 1 is checkpointed and logged
    env = {"MLX_TEST_SIGKILL": "quant:epoch_start:2", "MLX_TEST_FAULT_RANK": "1"}
    proc = quant(tmp_path, "train.epochs=2", extra=NPROC_2, env=env)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "rank 1 died (killed by signal 9 (SIGKILL))" in proc.stderr.splitlines()[-1]
    (run_dir,) = (tmp_path / "quant").iterdir()
    resumed = stage_process("quant", "train", tmp_path, [], "--from", str(run_dir), device=DEVICE)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from checkpoints/epoch-001.pt (epoch 1 of 2)" in resumed.stderr
    m = json.loads((run_dir / "run.json").read_text())
    assert m["stages"]["train"]["status"] == "completed"
    assert [h["step"] for h in m["stages"]["train"]["history"]] == [0, 1, 2]
    assert m["records"]["engine"]["world_size"] == 1


@pytest.mark.slow
def test_killed_after_an_epoch_then_resumed_ends_with_the_same_adapters(tmp_path):
    # the run kills itself once epoch 1's checkpoint is complete and its row not yet in run.json
    killed = quant(tmp_path / "killed", "train.epochs=2", env={"MLX_TEST_SIGKILL": "quant:before_log:1"})
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-3000:])
    (run_dir,) = (tmp_path / "killed" / "quant").iterdir()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["epoch-001.pt"]
    resumed = stage_process("quant", "train", tmp_path / "killed", [], "--from", str(run_dir), device=DEVICE)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    history = json.loads((run_dir / "run.json").read_text())["stages"]["train"]["history"]
    assert [h["step"] for h in history] == [0, 1, 2]  # epoch 1 from its checkpoint, none twice

    clean = run_dir_of(quant(tmp_path / "clean", "train.epochs=2"))
    a, b = adapters(run_dir, 2), adapters(clean, 2)
    assert a["step"] == b["step"] and a["model"].keys() == b["model"].keys()
    for key, value in b["model"].items():
        assert a["model"][key].equal(value), key  # resumed exactly where it stopped
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]


@pytest.mark.slow
def test_two_nodes_on_loopback_form_one_job(tmp_path):
    from mlx_core.testing_launch import assert_two_nodes_on_loopback_form_one_job

    assert_two_nodes_on_loopback_form_one_job("quant", tmp_path, SMALL, device=DEVICE)
