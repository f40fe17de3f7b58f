"""SIGKILL during training, then `--from` resumes from the last checkpoint and ends where an
uninterrupted run ends. The kills are deterministic: the test-only hook MLX_TEST_SIGKILL (mlx_core.faults)
makes the training process SIGKILL itself at a named instant (no timing race with the clock)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import DEVICE, TINY, run_ok

KEY = "sparse_arch.embedding_bag_collection.embedding_bags.product_table.weight"
EPOCHS = ["train.epochs=3"]
OPT_NOTE = "weights, dense Adam and fused sparse optimizer state"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """The weights of the same tiny run trained 3 epochs without a kill."""
    run_dir, _ = run_ok("train", tmp_path_factory.mktemp("runs"), *TINY, *EPOCHS)
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)


def killed_run(runs: Path, at: str) -> Path:
    cmd = [sys.executable, "-m", "mlx_core", "run", "recsys", "train", "--runs-dir", str(runs), "--device", DEVICE]
    for s in [*TINY, *EPOCHS]:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "MLX_TEST_SIGKILL": f"recsys:{at}"})  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    (run_dir,) = runs.glob("recsys/*")
    m = json.loads((run_dir / "run.json").read_text())  # valid JSON after a hard kill
    assert m["stages"]["train"]["status"] == "running"
    return run_dir


def resume(run_dir: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "mlx_core", "run", "recsys", "train", "--from", str(run_dir)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "after epoch 1" in proc.stderr
    m = json.loads((run_dir / "run.json").read_text())
    assert m["stages"]["train"]["status"] == "completed"
    # epoch 1 comes from the checkpoint, epochs 2 and 3 from the resumed invocation
    assert [h["step"] for h in m["stages"]["train"]["history"]] == [1, 2, 3]
    return m


def assert_same_weights(run_dir: Path, reference: dict) -> None:
    final = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert final["epoch"] == reference["epoch"] == 2
    assert final["model"].keys() == reference["model"].keys()
    for name, t in reference["model"].items():
        assert torch.equal(final["model"][name], t), name


def shard_files(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").glob("sparse_opt.*"))


def test_sigkill_mid_epoch_then_from_resumes(tmp_path, uninterrupted):
    run_dir = killed_run(tmp_path / "runs", "mid_epoch:2")
    killed = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert killed["epoch"] == 0  # epoch 1 checkpointed, epoch 2 killed after its second step
    assert shard_files(run_dir) == ["sparse_opt.epoch0.rank0-of-1.pt"]

    m = resume(run_dir)
    assert any(f"train: resumed from checkpoints/last.pt ({OPT_NOTE})" in n for n in m["notes"])
    assert_same_weights(run_dir, uninterrupted)
    # row-wise Adagrad's per-row state is kept for the last epoch only
    assert shard_files(run_dir) == ["sparse_opt.epoch2.rank0-of-1.pt"]
    opt = torch.load(run_dir / "checkpoints" / "sparse_opt.epoch2.rank0-of-1.pt", weights_only=True)
    assert opt["epoch"] == 2 and opt["state"][f"{KEY}|product_table.momentum1@0"].shape == (512,)


def test_sigkill_between_shards_and_checkpoint_keeps_optimizer_state(tmp_path, uninterrupted):
    """The instant that lost the fused optimizer state: epoch 2's shards are on disk, its last.pt
    is not, so last.pt names epoch 1 and epoch 1's shards must still be there."""
    run_dir = killed_run(tmp_path / "runs", "before_checkpoint:2")
    killed = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert killed["epoch"] == 0
    assert shard_files(run_dir) == ["sparse_opt.epoch0.rank0-of-1.pt", "sparse_opt.epoch1.rank0-of-1.pt"]

    m = resume(run_dir)
    # restored, not restarted (the note would then say only "weights and dense Adam state")
    assert any(f"train: resumed from checkpoints/last.pt ({OPT_NOTE})" in n for n in m["notes"])
    assert_same_weights(run_dir, uninterrupted)
    assert shard_files(run_dir) == ["sparse_opt.epoch2.rank0-of-1.pt"]
