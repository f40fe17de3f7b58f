"""custom_ops swaps Involution into another shipped plugin's model: segmentation's backbone."""

from __future__ import annotations

import pytest
import torch

from mlx_core.runs import Manifest
from mlx_core.testing import run_dir_of, stage_process

pytest.importorskip("mlx_segmentation")
pytest.importorskip("mlx_custom_ops")

#: segmentation's tiny config (tests/segmentation/seg_helpers.py): 32 px, 8 train / 4 val images, 1 epoch
TINY = ["data.image_size=32", "data.sample_train=8", "data.sample_val=4", "train.batch_size=4", "train.epochs=1"]


def test_segmentation_trains_with_involution_in_its_backbone(tmp_path):
    env = {"MLX_LOAD_PLUGINS": "segmentation,custom_ops", "OMP_NUM_THREADS": "1"}
    proc = stage_process("segmentation", "train", tmp_path, [*TINY, "custom_ops.swap=backbone.3x3"], device="cpu",
                         env=env)  # fmt: skip
    m = Manifest.load(run_dir_of(proc))
    swap = m.data["records"]["custom_ops.swap"]
    # deeplabv3_mobilenet_v3_large: the 7 stride-1, undilated 3x3 depthwise convolutions of its features
    assert swap["layers_swapped"] == 7 and swap["impl"] == "composite"
    assert swap["layers"][0] == "backbone.1.block.0.0"
    assert m.data["stages"]["train"]["status"] == "completed"
    # the trained weights are the swapped model's: the Involution's kernel generator, no 3x3 conv there
    (ckpt,) = sorted((m.run_dir / "checkpoints").glob("*.pt"))[-1:]
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    state = state.get("model", state)
    assert "backbone.1.block.0.0.span.weight" in state and "backbone.1.block.0.0.weight" not in state
