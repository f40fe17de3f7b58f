"""Shared helpers: tiny configs, CLI runs in subprocesses, one tiny exported run for the session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlx_core.runs import Manifest
from mlx_core.testing import cli

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


def sets(*items: str) -> list[str]:
    out: list[str] = []
    for item in items:
        out += ["--set", item]
    return out


def run_cli(stage: str, runs_dir: Path, *overrides: str, extra: tuple[str, ...] = ()):
    """``mlx run translation STAGE`` with TINY + overrides; returns the completed process."""
    return cli("run", "translation", stage, "--runs-dir", str(runs_dir), "--device", device(), *sets(*TINY, *overrides), *extra)


def ok(proc) -> Manifest:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Manifest.load(proc.stdout.strip().splitlines()[-1])


def one_error_line(proc, *fragments: str) -> str:
    """The process failed as a user error: exit 2 and exactly one stderr line, naming the fragments."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, f"exit {proc.returncode}:\n{proc.stderr[-3000:]}"
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], proc.stderr[-3000:]
    # the only other output allowed is the core's "run <dir>" banner (rich wraps it at 80 columns)
    before = "".join(lines[:-1])
    assert before == "" or (before.startswith("run ") and "error" not in before), proc.stderr[-3000:]
    for f in fragments:
        assert f in errors[0], (f, errors[0])
    return errors[0]


def device() -> str:
    return os.environ.get("MLX_TEST_DEVICE", "cpu")


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def pairs(n: int, seed: int = 0) -> list[dict]:
    from mlx_translation.grammar import generate

    return generate(n, seed=seed)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One tiny run through export, shared by the export and predict tests."""
    runs = tmp_path_factory.mktemp("runs")
    manifest = ok(run_cli("export", runs))
    return manifest.run_dir
