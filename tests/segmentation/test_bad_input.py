"""Bad inputs: each exits 2 with one ``error:`` line naming the offending value or file."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from .seg_helpers import one_error_line, run


@pytest.fixture
def voc(voc_root, tmp_path):
    """A private copy of the generated VOC folder, free to damage."""
    return shutil.copytree(voc_root, tmp_path / "VOC")


def first_id(voc, split="train"):
    return (voc / "ImageSets/Segmentation" / f"{split}.txt").read_text().split()[0]


def test_missing_folder(tmp_path):
    err = one_error_line(run("data", tmp_path / "runs", f"data.root={tmp_path / 'nowhere'}"))
    assert "nowhere" in err and "not a directory" in err


def test_mask_with_stray_class_id(voc, tmp_path):
    sid = first_id(voc)
    path = voc / "SegmentationClass" / f"{sid}.png"
    with Image.open(path) as m:
        arr = np.array(m)
        pal = m.getpalette()
    arr[0, 0] = 37
    bad = Image.fromarray(arr, mode="P")
    bad.putpalette(pal)
    bad.save(path)
    err = one_error_line(run("data", tmp_path / "runs", f"data.root={voc}"))
    assert f"{sid}.png" in err and "class id 37" in err and "num_classes is 21" in err


def test_truncated_jpeg(voc, tmp_path):
    sid = first_id(voc, "val")
    path = voc / "JPEGImages" / f"{sid}.jpg"
    path.write_bytes(path.read_bytes()[:300])
    err = one_error_line(run("data", tmp_path / "runs", f"data.root={voc}"))
    assert f"{sid}.jpg" in err and "not a readable image" in err


def test_not_an_image(voc, tmp_path):
    sid = first_id(voc)
    (voc / "JPEGImages" / f"{sid}.jpg").write_text("this is text, not a JPEG\n")
    err = one_error_line(run("data", tmp_path / "runs", f"data.root={voc}"))
    assert f"{sid}.jpg" in err and "not a readable image" in err


def test_split_id_without_image(voc, tmp_path):
    split = voc / "ImageSets/Segmentation/train.txt"
    split.write_text(split.read_text() + "ghost_0001\n")
    err = one_error_line(run("data", tmp_path / "runs", f"data.root={voc}"))
    assert "ghost_0001" in err and "no image" in err


def test_split_id_that_is_a_path_is_refused(voc, tmp_path):
    # an image outside the data folder (here: one of its own, reached through "..") is never read
    sid = first_id(voc)
    split = voc / "ImageSets/Segmentation/train.txt"
    split.write_text(split.read_text() + f"../JPEGImages/{sid}\n")
    err = one_error_line(run("data", tmp_path / "runs", f"data.root={voc}"))
    assert f"'../JPEGImages/{sid}'" in err and "train.txt" in err and "without folders" in err


def test_empty_split(voc, tmp_path):
    (voc / "ImageSets/Segmentation/val.txt").write_text("\n")
    err = one_error_line(run("data", tmp_path / "runs", f"data.root={voc}"))
    assert "val.txt" in err and "empty" in err


def test_missing_split_file(voc, tmp_path):
    err = one_error_line(run("data", tmp_path / "runs", f"data.root={voc}", "data.val_split=test"))
    assert "test.txt" in err and "does not exist" in err


@pytest.mark.parametrize(
    "override, named",
    [
        ("train.epochs=-1", "train.epochs"),
        ("model.arch=vgg16", "model.arch"),
        ("data.image_size=8", "data.image_size"),
        ('export.formats=["tflite"]', "export.formats"),
        ("train.lr=fast", "train.lr"),
        ("model.nonsense=1", "nonsense"),
    ],
)
def test_bad_set_values(tmp_path, override, named):
    err = one_error_line(run("data", tmp_path / "runs", override))
    assert named in err


def test_weights_of_another_architecture(tmp_path):
    import torch
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    path = tmp_path / "lraspp.pth"
    torch.save(lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21).state_dict(), path)
    err = one_error_line(run("model", tmp_path / "runs", f"model.weights={path}"))
    assert "lraspp.pth" in err and "does not fit deeplabv3_mobilenet_v3_large" in err
    assert "missing keys" in err and "unexpected keys" in err and "classifier." in err


def test_weights_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_bytes(b"\x00garbage" * 10)
    err = one_error_line(run("model", tmp_path / "runs", f"model.weights={path}"))
    assert "weights.pth" in err and "not a readable torch checkpoint" in err


def test_predict_on_a_file_that_is_not_an_image(exported_run, tmp_path):
    from mlx_core.testing import cli

    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    err = one_error_line(cli("predict", "segmentation", str(exported_run), str(bad), "--device", "cpu"))
    assert "notes.jpg" in err
