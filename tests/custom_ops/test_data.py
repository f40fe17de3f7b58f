"""The Flowers-102 image-folder reader and the generated sample written in that layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mlx_custom_ops.data import read_folder
from mlx_custom_ops.sample import write_sample
from PIL import Image

from mlx_core import DataError


def test_sample_round_trips_through_the_reader(tmp_path):
    write_sample(tmp_path, classes=3, per_class=4, valid_per_class=2, size=32, seed=0)
    data = read_folder(tmp_path, image_size=16)
    assert data.classes == ["1", "2", "3"]
    assert data.names[0].startswith("stripes-")
    assert data.train.images.shape == (12, 16, 16, 3) and data.valid.images.shape == (6, 16, 16, 3)
    assert sorted(set(data.train.labels.tolist())) == [0, 1, 2]
    x = data.train.normalized()
    assert x.shape == (12, 3, 16, 16) and x.dtype == np.float32


def test_flowers_layout_with_numeric_classes_and_names(tmp_path):
    for split in ("train", "valid"):
        for c in ("2", "10", "1"):  # numeric sort: 1, 2, 10 (not 1, 10, 2)
            (tmp_path / split / c).mkdir(parents=True)
            Image.new("RGB", (20, 12), (int(c) * 20, 0, 0)).save(tmp_path / split / c / "image_00001.jpg")
    (tmp_path / "cat_to_name.json").write_text(json.dumps({"1": "pink primrose", "10": "globe thistle"}))
    data = read_folder(tmp_path, image_size=8)
    assert data.classes == ["1", "2", "10"]
    assert data.names == ["pink primrose", "2", "globe thistle"]
    assert data.train.labels.tolist() == [0, 1, 2]


def test_missing_split_is_named(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "train" / "b").mkdir(parents=True)
    with pytest.raises(DataError, match="has no valid/ folder"):
        read_folder(tmp_path, 8)


def test_unreadable_image_is_named(tmp_path):
    write_sample(tmp_path, classes=2, per_class=4, valid_per_class=1, size=16, seed=0)
    bad = tmp_path / "valid" / "2" / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        read_folder(tmp_path, 8)


def test_valid_class_unknown_to_train_is_named(tmp_path):
    write_sample(tmp_path, classes=2, per_class=4, valid_per_class=1, size=16, seed=0)
    (tmp_path / "valid" / "7").mkdir()
    with pytest.raises(DataError, match=r"\['7'\]"):
        read_folder(tmp_path, 8)


def test_the_paddle_backend_on_several_processes_is_one_line():
    """The launcher's workers see world size > 1: the Paddle backend says in one line that its
    CPU collectives are not supported here (custom_ops.config.check_distribution)."""
    import pytest
    from mlx_custom_ops.config import CustomOpsConfig, check_distribution

    from mlx_core import ConfigError
    from mlx_core.hostile import assert_one_line_error

    check_distribution(CustomOpsConfig(), 1)
    check_distribution(CustomOpsConfig.model_validate({"model": {"backend": "torch"}}), 2)
    with pytest.raises(ConfigError) as err:
        check_distribution(CustomOpsConfig(), 2)
    assert_one_line_error(err.value, "model.backend='paddle'", "2 processes", "not supported")
