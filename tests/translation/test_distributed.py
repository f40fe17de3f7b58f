"""Seq2SeqTrainer under the core launcher (`mlx run translation train --nproc 2`: DDP from
torchrun's environment, gloo on CPU). Faults are deterministic (mlx_core.faults: a kill point on
the rank MLX_TEST_FAULT_RANK names)."""

from __future__ import annotations

import json
import os
import time

from mlx_core.testing import stage_process

from .conftest import run_cli

NPROC_2 = ("--nproc", "2")


def test_two_processes_train_one_model_and_rank_0_alone_writes(tmp_path):
    proc = run_cli("train", tmp_path / "runs", extra=NPROC_2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs" / "translation").iterdir()
    m = json.loads((run_dir / "run.json").read_text())
    launch = m["launch"]
    assert (launch["nproc"], launch["world_size"], launch["backend"]) == (2, 2, "gloo")
    ranks = launch["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["samples_per_s"] > 0 for r in ranks)
    # DDP: both replicas end with the same bytes (an evaluate() before train() once left them apart)
    assert len({r["weights_sha256"] for r in ranks}) == 1, ranks
    assert list(run_dir.rglob("run.json")) == [run_dir / "run.json"]
    assert sorted(p.name for p in (run_dir / "logs").glob("rank-*.log")) == ["rank-0.log", "rank-1.log"]
    # the DistributedSampler halves each rank's steps: 96 records / (2 x 16) = 3 steps an epoch
    assert (run_dir / "train" / "checkpoints" / "checkpoint-3" / "model.safetensors").exists()
    assert m["stages"]["train"]["status"] == "completed" and [h["step"] for h in m["stages"]["train"]["history"]] == [1]


def test_a_rank_that_raises_ends_the_run_in_one_line(tmp_path):
    env = {**os.environ, "MLX_TEST_RAISE": "translation:before_log:1", "MLX_TEST_FAULT_RANK": "1"}
    proc = run_cli("train", tmp_path / "runs", "train.epochs=2", extra=NPROC_2, env=env)
    ended = time.time()
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert errors == [lines[-1]] and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "rank 1 failed: RuntimeError: test fault at translation:before_log:1" in errors[0]
    (run_dir,) = (tmp_path / "runs" / "translation").iterdir()
    raised = json.loads((run_dir / "logs" / "rank-1.error.json").read_text())
    assert ended - raised["time"] < 60


def test_a_killed_worker_resumes_with_one_process(tmp_path):
    """Rank 1 dies by SIGKILL after epoch 2's checkpoint step; epoch 1's checkpoint is complete
    (rank 0 trained epoch 2 with rank 1 after writing it), so `--from` with one process resumes
    from a checkpoint, not from the start, and finishes."""
    env = {**os.environ, "MLX_TEST_SIGKILL": "translation:before_log:2", "MLX_TEST_FAULT_RANK": "1"}
    proc = run_cli("train", tmp_path / "runs", "train.epochs=2", extra=NPROC_2, env=env)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "rank 1 died (killed by signal 9 (SIGKILL))" in proc.stderr.splitlines()[-1]
    (run_dir,) = (tmp_path / "runs" / "translation").iterdir()
    resumed = stage_process("translation", "train", tmp_path / "runs", [], "--from", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    m = json.loads((run_dir / "run.json").read_text())
    assert m["stages"]["train"]["status"] == "completed"
    steps = [h["step"] for h in m["stages"]["train"]["history"]]
    assert steps == sorted(set(steps)) and steps[-1] == 2


def test_two_nodes_on_loopback_form_one_job(tmp_path):
    from mlx_core.testing_launch import assert_two_nodes_on_loopback_form_one_job

    from .conftest import TINY

    assert_two_nodes_on_loopback_form_one_job("translation", tmp_path, TINY,
                                              checkpoints="train/checkpoints/checkpoint-*/model.safetensors")  # fmt: skip
