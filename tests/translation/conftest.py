"""Shared helpers: tiny configs, CLI runs in subprocesses, one tiny exported run for the session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlx_core.runs import Manifest
from mlx_core.testing import cli, device_under_test, one_line_error, run_dir_of, sets, stage_process

__all__ = ["TINY", "device", "ok", "one_error_line", "pairs", "run_cli", "sets", "wait_for_checkpoint", "write_jsonl"]

# A model and corpus small enough that every stage takes seconds on a busy 2-core machine.
TINY = [
    "data.size=120",
    "data.vocab_size=150",
    "model.d_model=32",
    "model.d_ff=64",
    "model.num_heads=2",
    "model.num_layers=1",
    "train.epochs=1",
    "train.batch_size=16",
    "train.eval_samples=8",
    "train.generation_max_length=16",
    "export.parity_samples=4",
    "export.parity_max_new_tokens=12",
]


def run_cli(stage: str, runs_dir: Path, *overrides: str, extra: tuple[str, ...] = (), env: dict | None = None):
    """``mlx run translation STAGE`` with TINY + overrides; returns the completed process."""
    return stage_process("translation", stage, runs_dir, [*TINY, *overrides], *extra, env=env)


def ok(proc) -> Manifest:
    return Manifest.load(run_dir_of(proc))


def one_error_line(proc, *fragments: str) -> str:
    """The process failed as a user error: exit 2, one ``error:`` line naming the fragments, the last line."""
    return one_line_error(proc, *fragments, during_run=True)


def device() -> str:
    return device_under_test()


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def pairs(n: int, seed: int = 0) -> list[dict]:
    from mlx_translation.grammar import generate

    return generate(n, seed=seed)


def wait_for_checkpoint(runs: Path, step: int, proc: subprocess.Popen, timeout: float = 300) -> Path:
    """Wait until a complete ``checkpoint-N`` (N >= step, its trainer_state.json written) exists; return the run dir."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for state in runs.glob("translation/*/train/checkpoints/checkpoint-*/trainer_state.json"):
            if int(state.parent.name.split("-")[1]) >= step:
                return state.parents[3]
        if proc.poll() is not None:
            raise AssertionError(
                f"run ended (exit {proc.returncode}) before checkpoint {step}: {proc.stderr.read()[-2000:]}"
            )
        time.sleep(0.05)
    raise AssertionError(f"training never reached checkpoint {step}")


@pytest.fixture(scope="session")
def killed_run(tmp_path_factory) -> dict:
    """A tiny run through export that is SIGKILLed once its first epoch checkpoint is saved and
    before that epoch's row is logged, then finished with --from.

    Shared by the resume, export and predict tests (one training run for all of them).
    96 train records / batch 16 = 6 steps an epoch; 4 epochs = 24 steps.
    """
    runs = tmp_path_factory.mktemp("runs")
    cmd = [sys.executable, "-m", "mlx_core", "run", "translation", "export", "--runs-dir", str(runs),
           "--device", device(), *sets(*TINY, "train.epochs=4")]  # fmt: skip
    # the run kills itself at the worst instant on purpose: epoch 1's checkpoint is complete and
    # its row not yet in run.json (no race between a poll and the training)
    env = {**os.environ, "MLX_TEST_SIGKILL": "translation:before_log:1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-2000:])
    (run_dir,) = [p.parents[3] for p in runs.glob("translation/*/train/checkpoints/checkpoint-6/trainer_state.json")]
    killed = json.loads((run_dir / "run.json").read_text())  # still valid JSON after a hard kill
    corpus = (run_dir / "data" / "corpus.jsonl").read_bytes()
    resumed = cli("run", "translation", "export", "--from", str(run_dir), "--device", device())
    return {"run_dir": run_dir, "killed": killed, "corpus": corpus, "resumed": resumed}


@pytest.fixture(scope="session")
def tiny_run(killed_run) -> Path:
    """The finished tiny run (exported), shared by the export and predict tests."""
    ok(killed_run["resumed"])
    return killed_run["run_dir"]
