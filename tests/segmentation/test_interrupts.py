"""A training run killed with SIGKILL resumes with --from from its last epoch checkpoint and ends
with the same weights as an uninterrupted run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlx_core.testing import spawn

from .seg_helpers import DEVICE, TINY, run, run_dir_of, sets

EPOCHS = "train.epochs=3"
MORE = ["data.sample_train=12"]  # 3 steps an epoch: time to kill it between checkpoints


def start(runs: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mlx_core", "run", "segmentation", "train", "--runs-dir", str(runs), "--device", DEVICE,
           *sets(*TINY, *MORE, EPOCHS)]  # fmt: skip
    return spawn(cmd)


def wait_for_checkpoint(runs: Path, proc: subprocess.Popen, timeout: float = 300) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = sorted(runs.glob("segmentation/*/checkpoints/epoch-*.pt"))
        if found:
            return found[0].parents[1]
        if proc.poll() is not None:
            raise AssertionError(f"training ended before its first checkpoint: {proc.stderr.read()[-3000:]}")
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def test_sigkill_mid_training_then_from_resumes_to_the_same_weights(tmp_path):
    import torch

    proc = start(tmp_path / "killed")
    run_dir = wait_for_checkpoint(tmp_path / "killed", proc)
    proc.kill()
    proc.wait(timeout=60)
    if proc.returncode == 0:
        pytest.skip("training finished before the kill landed (machine too fast for this timing)")
    m = json.loads((run_dir / "run.json").read_text())  # still valid JSON after a hard kill
    assert m["stages"]["train"]["status"] == "running"
    done = sorted(int(p.stem.split("-")[1]) for p in (run_dir / "checkpoints").glob("epoch-*.pt"))
    assert done and done[-1] < 3
    assert not list((run_dir / "checkpoints").glob("*.tmp*"))  # atomic writes: no half-written checkpoint

    resumed = subprocess.run(
        [sys.executable, "-m", "mlx_core", "run", "segmentation", "train", "--from", str(run_dir), "--device", DEVICE],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from checkpoints/epoch-{done[-1]:03d}.pt" in resumed.stderr
    assert json.loads((run_dir / "run.json").read_text())["stages"]["train"]["status"] == "completed"

    clean = run("train", tmp_path / "clean", *MORE, EPOCHS)
    assert clean.returncode == 0, clean.stderr[-3000:]
    a = torch.load(run_dir / "checkpoints" / "epoch-003.pt", weights_only=True)
    b = torch.load(run_dir_of(clean) / "checkpoints" / "epoch-003.pt", weights_only=True)
    assert a["step"] == b["step"]
    for key, value in b["model"].items():
        assert torch.equal(a["model"][key], value), key  # resumed exactly where it stopped
