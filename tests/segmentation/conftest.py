"""Fixtures: a generated VOC folder and one finished tiny export run per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from .seg_helpers import run, run_dir_of


@pytest.fixture(scope="session")
def voc_root(tmp_path_factory) -> Path:
    """A small VOC-format folder written by the sample generator (the real on-disk format)."""
    from mlx_segmentation.sample import generate_sample

    return generate_sample(tmp_path_factory.mktemp("voc") / "VOC", n_train=8, n_val=4, size=32, seed=3)


@pytest.fixture(scope="session")
def exported_run(tmp_path_factory) -> Path:
    """One tiny run through every stage and every export format, shared by several tests."""
    runs = tmp_path_factory.mktemp("runs")
    proc = run("export", runs)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return run_dir_of(proc)
