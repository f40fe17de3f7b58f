"""data.layout=sbd (SBD's dataset/ with cls/*.mat) and data.layout=aug (SegmentationClassAug):
generated from the VOC sample, they must read back as the same images and masks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from mlx_segmentation.data import VOCSegmentation
from PIL import Image

from mlx_core import DataError

from .seg_helpers import one_error_line, run, run_dir_of


def write_sbd(voc: Path, dest: Path) -> Path:
    """SBD as downloaded (benchmark_RELEASE/dataset/...) with the VOC sample's images and masks."""
    ds = dest / "benchmark_RELEASE" / "dataset"
    (ds / "img").mkdir(parents=True)
    (ds / "cls").mkdir()
    for split in ("train", "val"):
        ids = (voc / "ImageSets/Segmentation" / f"{split}.txt").read_text().split()
        (ds / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for sid in ids:
            shutil.copy(voc / "JPEGImages" / f"{sid}.jpg", ds / "img" / f"{sid}.jpg")
            seg = np.array(Image.open(voc / "SegmentationClass" / f"{sid}.png"))
            present = np.unique(seg[(seg > 0) & (seg < 255)]).astype(np.uint8)
            gt = {"Segmentation": seg, "Boundaries": np.zeros(len(present), dtype=object), "CategoriesPresent": present}
            scipy.io.savemat(ds / "cls" / f"{sid}.mat", {"GTcls": gt})
    return dest / "benchmark_RELEASE"


def write_aug(voc: Path, dest: Path) -> Path:
    """VOC2012 + SegmentationClassAug (grayscale ids) and DeepLab's two-column train_aug.txt."""
    root = dest / "VOC2012"
    shutil.copytree(voc / "JPEGImages", root / "JPEGImages")
    (root / "SegmentationClassAug").mkdir()
    (root / "ImageSets/Segmentation").mkdir(parents=True)
    for split, name in (("train", "train_aug"), ("val", "val")):
        ids = (voc / "ImageSets/Segmentation" / f"{split}.txt").read_text().split()
        for sid in ids:
            ids_only = np.array(Image.open(voc / "SegmentationClass" / f"{sid}.png"))
            Image.fromarray(ids_only, mode="L").save(root / "SegmentationClassAug" / f"{sid}.png")
        lines = [f"/JPEGImages/{s}.jpg /SegmentationClassAug/{s}.png" for s in ids] if name == "train_aug" else ids
        (root / "ImageSets/Segmentation" / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def layouts(voc_root, tmp_path_factory):
    dest = tmp_path_factory.mktemp("layouts")
    return {"sbd": write_sbd(voc_root, dest), "aug": write_aug(voc_root, dest)}


@pytest.mark.parametrize(("layout", "train_split"), [("sbd", "train"), ("aug", "train_aug")])
def test_layout_reads_the_same_samples_as_voc(voc_root, layouts, layout, train_split):
    for split, name in (("train", train_split), ("val", "val")):
        voc = VOCSegmentation(voc_root, split, num_classes=21, size=32)
        other = VOCSegmentation(layouts[layout], name, num_classes=21, size=32, layout=layout)
        assert [s.id for s in other.samples] == [s.id for s in voc.samples]
        for i in range(len(voc)):
            (xa, ya), (xb, yb) = voc[i], other[i]
            assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    assert other.samples[0].mask.suffix == (".mat" if layout == "sbd" else ".png")


def test_sbd_and_aug_through_the_cli(layouts, tmp_path):
    """The data stage reads SBD as downloaded (benchmark_RELEASE/ given, dataset/ found)."""
    proc = run("data", tmp_path / "runs", "data.layout=sbd", f"data.root={layouts['sbd']}")
    m = json.loads((run_dir_of(proc) / "run.json").read_text())
    assert m["records"]["data"]["layout"] == "sbd" and m["records"]["data"]["train"] == 8


def test_bad_sbd_and_aug_files_are_one_line(layouts, tmp_path):
    sbd = tmp_path / "sbd"
    shutil.copytree(layouts["sbd"], sbd)
    cls = sbd / "dataset" / "cls"
    first = sorted(cls.glob("*.mat"))[0]
    scipy.io.savemat(first, {"other": np.zeros((2, 2))})
    with pytest.raises(DataError, match=rf"^mask {first} has no GTcls.Segmentation \(keys: \['other'\]\)"):
        VOCSegmentation(sbd, "train", num_classes=21, size=32, layout="sbd")
    first.write_bytes(b"not a mat file at all" * 8)
    with pytest.raises(DataError, match=rf"^mask {first} is not a readable MATLAB .mat file"):
        VOCSegmentation(sbd, "train", num_classes=21, size=32, layout="sbd")
    scipy.io.savemat(first, {"GTcls": {"Segmentation": np.full((32, 32), 40, dtype=np.uint8)}})
    with pytest.raises(DataError, match=r"contains class id 40, but model.num_classes is 21"):
        VOCSegmentation(sbd, "train", num_classes=21, size=32, layout="sbd")
    with pytest.raises(DataError, match=r"is not an SBD folder: expected img/ and cls/"):
        VOCSegmentation(tmp_path, "train", num_classes=21, size=32, layout="sbd")
    aug = layouts["aug"]
    bad = tmp_path / "aug"
    shutil.copytree(aug, bad)
    (bad / "ImageSets/Segmentation/train_aug.txt").write_text("/JPEGImages/x.jpg /../../etc/passwd\n")
    with pytest.raises(DataError, match=r"train_aug.txt:1: '/\.\./\.\./etc/passwd' points outside data.root"):
        VOCSegmentation(bad, "train_aug", num_classes=21, size=32, layout="aug")
    with pytest.raises(DataError, match=r"split file .*nope.txt does not exist"):
        VOCSegmentation(bad, "nope", num_classes=21, size=32, layout="aug")
    # through the CLI: exit 2, the one line; sample data and another layout do not mix
    proc = run("data", tmp_path / "runs", "data.layout=aug")
    assert "data.layout=aug reads a downloaded dataset: set data.root" in one_error_line(proc)
