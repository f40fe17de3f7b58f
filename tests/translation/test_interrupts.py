"""A training run killed with SIGKILL resumes with ``--from`` from its last complete checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from conftest import TINY, device, ok, run_cli, sets

SLOW = ["train.epochs=8"]


def wait_for_checkpoint(runs: Path, step: int, proc: subprocess.Popen, timeout: float = 240) -> Path:
    """Wait until a complete ``checkpoint-N`` (N >= step) exists; return the run directory."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for state in runs.glob("translation/*/train/checkpoints/checkpoint-*/trainer_state.json"):
            if int(state.parent.name.split("-")[1]) >= step:
                return state.parents[3]
        if proc.poll() is not None:
            raise AssertionError(f"training ended (exit {proc.returncode}) before checkpoint {step}: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"training never reached checkpoint {step}")


def test_sigkill_mid_training_then_from_resumes(tmp_path):
    cmd = [sys.executable, "-m", "mlx_core", "run", "translation", "train", "--runs-dir", str(tmp_path),
           "--device", device(), *sets(*TINY, *SLOW)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_dir = wait_for_checkpoint(tmp_path, 12, proc)  # 96 train records / batch 16 = 6 steps an epoch
    finally:
        proc.kill()
        proc.wait(timeout=60)

    m = json.loads((run_dir / "run.json").read_text())  # still valid JSON after a hard kill
    assert m["stages"]["train"]["status"] == "running"
    corpus = (run_dir / "data" / "corpus.jsonl").read_bytes()
    untrained = m["metrics"]["bleu_untrained"]

    again = ok(run_cli("train", tmp_path, *SLOW, extra=("--from", str(run_dir))))
    assert again.run_dir == run_dir
    resumed_from = again.data["records"]["resumed_from"]
    step = int(resumed_from.rsplit("-", 1)[1])
    assert 12 <= step < 48 and step % 6 == 0, resumed_from
    assert again.data["stages"]["train"]["status"] == "completed"
    assert {h["step"] for h in again.data["stages"]["train"]["history"]} == set(range(1, 9))
    assert again.data["metrics"]["bleu_untrained"] == untrained  # not re-measured on the half-trained model
    assert (run_dir / "data" / "corpus.jsonl").read_bytes() == corpus
    state = json.loads((run_dir / "train" / "checkpoints" / "checkpoint-48" / "trainer_state.json").read_text())
    assert state["global_step"] == 48
