"""Shared helpers of the multimodal plugin's tests: tiny configs and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: nox's multimodal-cuda session sets MLX_TEST_DEVICE=cuda
DEVICE = os.environ.get("MLX_TEST_DEVICE", "cpu")

#: a generated set and model small enough for seconds per stage on one core
TINY = [
    "data.n_train=48", "data.n_val=16", "data.image_size=16", "data.wordpiece_vocab_size=60",
    "model.hidden_size=16", "model.image_layers=1", "model.text_layers=1", "model.patch_size=8",
    "train.epochs=1", "train.batch_size=16",
]  # fmt: skip


def mlx(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``mlx ARGS`` in a subprocess of this interpreter."""
    env = {**os.environ, "MLX_LOAD_PLUGINS": "multimodal", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "mlx_core", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def run(runs: Path, stage: str, overrides: list[str], *extra: str) -> subprocess.CompletedProcess:
    args = ["run", "multimodal", stage, "--runs-dir", str(runs), "--device", DEVICE, *extra]
    for o in overrides:
        args += ["--set", o]
    return mlx(*args)


def run_dir_of(proc: subprocess.CompletedProcess) -> Path:
    assert proc.returncode == 0, proc.stderr[-4000:]
    return Path(proc.stdout.strip().splitlines()[-1])


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The single ``error:`` line of a failed command (asserting exit code 2 and nothing else on stderr)."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return errors[0]


def write_vqa(folder: Path, records: list[dict], images: dict[str, tuple[int, int, int]] | None = None) -> Path:
    """A VQA folder: ``train.jsonl`` with ``records`` and solid-colour PNGs named in ``images``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name, color in (images or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 20), color).save(folder / name)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


@pytest.fixture
def colour_records() -> tuple[list[dict], dict[str, tuple[int, int, int]]]:
    """Eight records about two solid-colour images."""
    images = {"images/red.png": (220, 30, 30), "images/blue.png": (30, 30, 220)}
    recs = []
    for _ in range(4):
        recs.append({"image": "images/red.png", "question": "what color is it?", "answers": ["red", "red", "pink"]})
        recs.append({"image": "images/blue.png", "question": "what color is it?", "answers": ["blue"]})
    return recs, images


def stage_ctx(tmp_path, model=None, train=None, **data_cfg):
    """A real ``RunContext`` (with a manifest) for calling stage functions in process."""
    from mlx_multimodal.config import MultimodalConfig

    from mlx_core.context import RunContext
    from mlx_core.runs import Manifest

    cfg = MultimodalConfig.model_validate({"data": {"image_size": 16, "wordpiece_vocab_size": 200, **data_cfg},
                                           "model": {"patch_size": 8, **(model or {})}, "train": train or {}})  # fmt: skip
    run_dir = tmp_path / "run"
    run_dir.mkdir(parents=True)
    return RunContext(plugin="multimodal", stage="data", target="data", config=cfg, device="cpu", run_dir=run_dir,
                      manifest=Manifest.create(run_dir, plugin="multimodal"))  # fmt: skip
