"""SIGKILL in the middle of training, then `--from` resumes from the last checkpoint."""

import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from .conftest import TINY

KEY = "sparse_arch.embedding_bag_collection.embedding_bags.product_table.weight"


def wait_for_checkpoint(runs: Path, epoch: int, timeout: float = 240) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for ck in runs.glob("recsys/*/checkpoints/last.pt"):
            try:
                if torch.load(ck, weights_only=True)["epoch"] >= epoch:
                    return ck.parents[1]
            except (RuntimeError, OSError, EOFError):
                pass  # atomic writes make this unreachable; tolerated so the test reports the real failure
        time.sleep(0.2)
    raise AssertionError(f"training never checkpointed epoch {epoch}")


def test_sigkill_then_from_resumes(tmp_path):
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "mlx_core", "run", "recsys", "train", "--runs-dir", str(runs), "--device", "cpu"]
    for s in [*TINY, "train.epochs=200", "data.examples=4000"]:
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_dir = wait_for_checkpoint(runs, 1)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    m = json.loads((run_dir / "run.json").read_text())  # valid JSON after a hard kill
    assert m["stages"]["train"]["status"] == "running"
    killed = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    done = killed["epoch"] + 1
    assert 2 <= done < 200

    resumed = subprocess.run(
        [sys.executable, "-m", "mlx_core", "run", "recsys", "train", "--from", str(run_dir), "--set", f"train.epochs={done + 1}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"after epoch {done}" in resumed.stderr
    m = json.loads((run_dir / "run.json").read_text())
    assert m["stages"]["train"]["status"] == "completed"
    hist = m["stages"]["train"]["history"]
    assert [h["step"] for h in hist] == list(range(1, done + 2))  # the killed epochs come from the checkpoint
    assert any("resumed" in n and "fused sparse optimizer state" in n for n in m["notes"])
    # row-wise Adagrad's per-row state is checkpointed (full tensors) and restored on resume
    opt = torch.load(run_dir / "checkpoints" / "sparse_opt.rank0-of-1.pt", weights_only=True)
    assert opt["epoch"] == done and opt["state"][f"{KEY}|product_table.momentum1@0"].shape == (512,)
    final = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert final["epoch"] == done
    assert not torch.equal(final["model"][KEY], killed["model"][KEY])
    # the resumed epoch starts from the trained weights, not from scratch: its loss is lower than epoch 1's
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
