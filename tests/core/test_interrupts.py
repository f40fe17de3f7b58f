"""Interrupted runs: Ctrl-C and SIGTERM mark the stage interrupted; SIGKILL then --from resumes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlx_core.testing import spawn

SLOW = ["--set", "train.epochs=60", "--set", "train.step_delay=0.05"]


def start(runs: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mlx_core", "run", "linreg", "export", "--runs-dir", str(runs), *SLOW, *extra]
    return spawn(cmd)


def wait_for_step(runs: Path, step: int, timeout: float = 60) -> Path:
    """Wait until the run's training checkpoint reaches ``step``; return the run directory."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for ckpt in runs.glob("linreg/*/checkpoints/last.json"):
            try:
                if json.loads(ckpt.read_text())["step"] >= step:
                    return ckpt.parents[1]
            except (ValueError, OSError):
                pass  # never happens with atomic writes; tolerated so the test reports the real failure
        time.sleep(0.02)
    raise AssertionError(f"training never reached step {step}")


@pytest.mark.parametrize(
    "sig, code, reason, line",
    [(signal.SIGINT, 130, "Ctrl-C", "interrupted"), (signal.SIGTERM, 130, "SIGTERM", "terminated (SIGTERM)")],
)
def test_interrupt_marks_stage_interrupted(tmp_path, sig, code, reason, line):
    proc = start(tmp_path)
    run_dir = wait_for_step(tmp_path, 5)  # the instant: a checkpoint on disk, not a sleep
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == line, err  # the documented line, printed last
    m = json.loads((run_dir / "run.json").read_text())
    assert m["stages"]["train"]["status"] == "interrupted"
    assert reason in m["stages"]["train"]["error"]
    assert m["stages"]["data"]["status"] == "completed"
    assert "export" not in m["stages"] or m["stages"]["export"]["status"] == "pending"
    assert any("interrupted" in n for n in m["notes"])
    assert not (run_dir / ".lock").exists()


def test_sigkill_then_from_resumes_to_identical_result(tmp_path):
    proc = start(tmp_path / "killed")
    run_dir = wait_for_step(tmp_path / "killed", 10)
    proc.kill()
    proc.wait(timeout=30)
    m = json.loads((run_dir / "run.json").read_text())  # valid JSON even after a hard kill
    assert m["stages"]["train"]["status"] == "running"
    step_at_kill = json.loads((run_dir / "checkpoints" / "last.json").read_text())["step"]
    assert 10 <= step_at_kill < 60

    resumed = subprocess.run(
        [sys.executable, "-m", "mlx_core", "run", "linreg", "export", "--from", str(run_dir), "--set", "train.step_delay=0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from step {step_at_kill}" in resumed.stderr

    clean = subprocess.run(
        [sys.executable, "-m", "mlx_core", "run", "linreg", "export", "--runs-dir", str(tmp_path / "clean"), "--set", "train.epochs=60"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert clean.returncode == 0, clean.stderr
    clean_dir = Path(clean.stdout.strip().splitlines()[-1])
    a = json.loads((run_dir / "export" / "model.json").read_text())
    b = json.loads((clean_dir / "export" / "model.json").read_text())
    assert a == b  # bit-identical weights: same seed, same steps, resumed exactly where it stopped
    assert json.loads((run_dir / "run.json").read_text())["stages"]["train"]["status"] == "completed"
