"""A training run killed with SIGKILL resumes with --from from its last epoch checkpoint and ends
with the same weights as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from .seg_helpers import DEVICE, TINY, run, run_dir_of, sets

EPOCHS = "train.epochs=3"
MORE = ["data.sample_train=12"]  # 3 steps an epoch: time to kill it between checkpoints


def test_sigkill_mid_training_then_from_resumes_to_the_same_weights(tmp_path):
    import torch

    # the run kills itself at the worst instant on purpose (mlx_core.faults): epoch 1's checkpoint
    # is complete and its row not yet in run.json; no kill raced against the clock
    cmd = [sys.executable, "-m", "mlx_core", "run", "segmentation", "train", "--runs-dir", str(tmp_path / "killed"),
           "--device", DEVICE, *sets(*TINY, *MORE, EPOCHS)]  # fmt: skip
    env = {**os.environ, "MLX_TEST_SIGKILL": "segmentation:before_log:1"}
    killed = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-3000:])
    (run_dir,) = [p.parent for p in (tmp_path / "killed").glob("segmentation/*/run.json")]
    m = json.loads((run_dir / "run.json").read_text())  # still valid JSON after a hard kill
    assert m["stages"]["train"]["status"] == "running"
    assert [r["step"] for r in m["stages"]["train"]["history"]] == [0]  # epoch 1 checkpointed, not logged
    done = sorted(int(p.stem.split("-")[1]) for p in (run_dir / "checkpoints").glob("epoch-*.pt"))
    assert done == [1]
    assert not list((run_dir / "checkpoints").glob("*.tmp*"))  # atomic writes: no half-written checkpoint

    resumed = subprocess.run(
        [sys.executable, "-m", "mlx_core", "run", "segmentation", "train", "--from", str(run_dir), "--device", DEVICE],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from checkpoints/epoch-{done[-1]:03d}.pt" in resumed.stderr
    after = json.loads((run_dir / "run.json").read_text())["stages"]["train"]
    assert after["status"] == "completed"
    assert [r["step"] for r in after["history"]] == [0, 1, 2, 3]  # epoch 1 from its checkpoint, none twice

    clean = run("train", tmp_path / "clean", *MORE, EPOCHS)
    assert clean.returncode == 0, clean.stderr[-3000:]
    a = torch.load(run_dir / "checkpoints" / "epoch-003.pt", weights_only=True)
    b = torch.load(run_dir_of(clean) / "checkpoints" / "epoch-003.pt", weights_only=True)
    assert a["step"] == b["step"]
    for key, value in b["model"].items():
        assert torch.equal(a["model"][key], value), key  # resumed exactly where it stopped
