"""Shared helpers of the multimodal plugin's tests: tiny configs and a CLI runner."""

from __future__ import annotations

import json
import subprocess
from functools import partial
from pathlib import Path

import pytest

from mlx_core.testing import cli, device_under_test, one_line_error, run_dir_of, stage_context, stage_process

__all__ = ["DEVICE", "SMALL", "TINY", "error_line", "mlx", "run", "run_dir_of", "stage_ctx", "write_vqa"]

#: nox's multimodal-cuda session sets MLX_TEST_DEVICE=cuda
DEVICE = device_under_test()

#: a generated set and model small enough for seconds per stage on one core
TINY = [
    "data.n_train=48", "data.n_val=16", "data.image_size=16", "data.wordpiece_vocab_size=60",
    "model.hidden_size=16", "model.image_layers=1", "model.text_layers=1", "model.patch_size=8",
    "train.epochs=1", "train.batch_size=16",
]  # fmt: skip


#: the smaller budget of the default recipe: fewer questions and epochs, default model and image sizes
SMALL = ["data.n_train=900", "data.n_val=200", "train.epochs=3"]


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """One finished export run of the default model on the small recipe (test_pipeline, test_serve)."""
    runs = tmp_path_factory.mktemp("runs")
    return run_dir_of(run(runs, "export", SMALL))


#: only this plugin loaded; wide lines so that no message is wrapped
ENV = {"MLX_LOAD_PLUGINS": "multimodal", "COLUMNS": "200"}


def mlx(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``mlx ARGS`` in a subprocess of this interpreter."""
    return cli(*args, env=ENV, timeout=timeout)


def run(runs: Path, stage: str, overrides: list[str], *extra: str) -> subprocess.CompletedProcess:
    return stage_process("multimodal", stage, runs, overrides, *extra, device=DEVICE, env=ENV, timeout=600)


#: the single ``error:`` line of a failed command, the last on stderr (exit code 2, no traceback)
error_line = partial(one_line_error, during_run=True)


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

    cfg = MultimodalConfig.model_validate({"data": {"image_size": 16, "wordpiece_vocab_size": 200, **data_cfg},
                                           "model": {"patch_size": 8, **(model or {})}, "train": train or {}})  # fmt: skip
    return stage_context(tmp_path / "run", "multimodal", cfg)
