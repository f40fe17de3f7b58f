"""The VOC reader and its transforms, on a folder written by the sample generator (in process)."""

from __future__ import annotations

import numpy as np
import pytest
from mlx_segmentation.data import (
    IGNORE,
    VOC_CLASSES,
    VOCSegmentation,
    eval_transform,
    index_split,
    load_image,
    load_mask,
    train_transform,
    voc_palette,
)
from mlx_segmentation.sample import generate_sample
from PIL import Image

from mlx_core import DataError


def test_generated_folder_has_the_voc_layout(voc_root):
    train = (voc_root / "ImageSets/Segmentation/train.txt").read_text().split()
    val = (voc_root / "ImageSets/Segmentation/val.txt").read_text().split()
    assert len(train) == 8 and len(val) == 4 and not set(train) & set(val)
    for sid in train + val:
        assert (voc_root / "JPEGImages" / f"{sid}.jpg").is_file()
        with Image.open(voc_root / "SegmentationClass" / f"{sid}.png") as m:
            assert m.mode == "P"  # palette PNG, as in VOC2012
            assert m.getpalette()[: 3 * 16] == voc_palette()[: 3 * 16]


def test_sample_masks_hold_sample_classes_and_ignore_borders(voc_root):
    ids = set()
    for sample in index_split(voc_root, "train", 21):
        ids |= set(np.unique(load_mask(sample.mask, 21)).tolist())
    allowed = {0, IGNORE} | {VOC_CLASSES.index(c) for c in ("person", "dog", "sheep")}
    assert ids <= allowed
    assert 0 in ids and IGNORE in ids and len(ids - {0, IGNORE}) >= 2


def test_generator_is_deterministic_by_seed(tmp_path):
    a = generate_sample(tmp_path / "a", 2, 1, 32, seed=5)
    b = generate_sample(tmp_path / "b", 2, 1, 32, seed=5)
    c = generate_sample(tmp_path / "c", 2, 1, 32, seed=6)
    name = "SegmentationClass/sample_00000.png"
    assert np.array_equal(np.array(Image.open(a / name)), np.array(Image.open(b / name)))
    assert (a / "JPEGImages/sample_00001.jpg").read_bytes() == (b / "JPEGImages/sample_00001.jpg").read_bytes()
    assert (a / "JPEGImages/sample_00001.jpg").read_bytes() != (c / "JPEGImages/sample_00001.jpg").read_bytes()


def test_dataset_items_are_normalized_tensors_with_masks(voc_root):
    val = VOCSegmentation(voc_root, "val", 21, 48)
    x, y = val[0]
    assert x.shape == (3, 48, 48) and x.dtype == np.float32
    assert y.shape == (48, 48) and y.dtype == np.int64
    assert -2.2 < x.min() and x.max() < 2.7  # ImageNet mean/std normalization of [0, 1] pixels
    train = VOCSegmentation(voc_root, "train", 21, 40, train=True, seed=1)
    xs, ys = train[0]
    assert xs.shape == (3, 40, 40) and ys.shape == (40, 40)
    assert train[0][1].tolist() == ys.tolist()  # same epoch and index: same random crop
    train.epoch = 1
    assert not np.array_equal(train[0][0], xs)  # another epoch: another crop


def test_train_transform_pads_small_images_with_ignore():
    rng = np.random.default_rng(0)
    image = Image.new("RGB", (10, 8), (200, 10, 10))
    mask = np.full((8, 10), 15, dtype=np.uint8)
    x, y = train_transform(image, mask, 32, rng, (0.5, 0.5), hflip=False)  # short side 16 < 32
    assert x.shape == (3, 32, 32)
    assert set(np.unique(y).tolist()) == {15, IGNORE}


def test_eval_transform_resizes_mask_with_nearest():
    image = Image.new("RGB", (50, 30))
    mask = np.zeros((30, 50), dtype=np.uint8)
    mask[:, 25:] = 17
    _, y = eval_transform(image, mask, 20)
    assert set(np.unique(y).tolist()) == {0, 17}


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "P", "CMYK"])
def test_images_in_other_modes_are_converted_to_rgb(tmp_path, mode):
    path = tmp_path / ("im.png" if mode != "CMYK" else "im.jpg")
    Image.new(mode, (12, 9)).save(path)
    im = load_image(path)
    assert im.mode == "RGB" and im.size == (12, 9)


def test_not_an_image_is_a_data_error(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("hello")
    with pytest.raises(DataError, match="notes.jpg is not a readable image"):
        load_image(bad)


def test_stray_class_id_names_file_and_value(tmp_path):
    m = np.zeros((4, 4), dtype=np.uint8)
    m[0, 0] = 42
    Image.fromarray(m, mode="L").save(tmp_path / "m.png")
    with pytest.raises(DataError, match=r"m.png contains class id 42, but model.num_classes is 21"):
        load_mask(tmp_path / "m.png", 21)
    m[0, 0] = IGNORE
    Image.fromarray(m, mode="L").save(tmp_path / "m.png")
    assert load_mask(tmp_path / "m.png", 21)[0, 0] == IGNORE
