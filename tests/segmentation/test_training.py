"""The default config learns: its val mIoU clearly beats the untrained model's, object classes included."""

from __future__ import annotations

import json

import pytest

from mlx_core.testing import cli

from .seg_helpers import DEVICE, run_dir_of


@pytest.mark.slow
def test_default_config_beats_the_untrained_model(tmp_path):
    proc = cli("run", "segmentation", "train", "--runs-dir", str(tmp_path), "--device", DEVICE)  # defaults only
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((run_dir_of(proc) / "run.json").read_text())
    metrics = m["stages"]["train"]["metrics"]
    untrained, trained = metrics["untrained_val_miou"], metrics["val_miou"]
    assert trained >= untrained + 0.3, (untrained, trained)
    # more than a background-only model (~0.21 on the sample data): the object classes are found
    iou = m["records"]["val_iou_per_class"]
    assert {"person", "dog", "sheep"} <= set(iou)
    assert min(iou["person"], iou["dog"], iou["sheep"]) > 0.1, iou
    assert metrics["val_pixel_acc"] > metrics["untrained_val_pixel_acc"]
    assert m["records"]["trained"] is True
