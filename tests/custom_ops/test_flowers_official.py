"""Oxford Flowers-102 as downloaded (jpg/, imagelabels.mat, setid.mat), a small generated copy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io
from mlx_custom_ops.data import read_folder
from PIL import Image

from mlx_core import DataError
from mlx_core.runs import Manifest
from mlx_core.testing import one_line_error, run_dir_of, stage_process


def write_official(root, labels=(1, 2, 3, 1, 2, 3, 1, 2, 3, 102), trn=(1, 2, 3, 10), val=(4, 5, 6), tst=(7, 8, 9)):
    """The VGG release's files, as MATLAB writes them: 1 x N double arrays."""
    (root / "jpg").mkdir(parents=True)
    for i, c in enumerate(labels, start=1):
        Image.new("RGB", (30, 20), (c * 2, 80, 200 - c)).save(root / "jpg" / f"image_{i:05d}.jpg")
    scipy.io.savemat(root / "imagelabels.mat", {"labels": np.array([labels], dtype=np.float64)})
    scipy.io.savemat(root / "setid.mat", {k: np.array([v], dtype=np.float64)
                                          for k, v in (("trnid", trn), ("valid", val), ("tstid", tst))})  # fmt: skip
    return root


def test_official_layout_reads_trnid_and_valid(tmp_path):
    root = write_official(tmp_path)
    (root / "cat_to_name.json").write_text(json.dumps({"1": "pink primrose", "102": "blackberry lily"}))
    data = read_folder(root, image_size=8)
    assert data.classes == ["1", "2", "3", "102"]
    assert data.names == ["pink primrose", "2", "3", "blackberry lily"]
    assert data.train.files == ["jpg/image_00001.jpg", "jpg/image_00002.jpg", "jpg/image_00003.jpg",
                                "jpg/image_00010.jpg"]  # fmt: skip
    assert data.train.labels.tolist() == [0, 1, 2, 3] and data.valid.labels.tolist() == [0, 1, 2]
    assert data.train.images.shape == (4, 8, 8, 3)


def test_bad_official_files_are_one_line_errors(tmp_path):
    root = write_official(tmp_path / "a")
    (root / "setid.mat").write_bytes(b"MATLAB 5.0 MAT-file, junk")
    with pytest.raises(DataError, match=r"setid.mat is not a MATLAB .mat file"):
        read_folder(root, 8)
    scipy.io.savemat(root / "setid.mat", {"trnid": np.array([[1]]), "tstid": np.array([[2]])})
    with pytest.raises(DataError, match=r"setid.mat has no 'valid' array \(found \['trnid', 'tstid'\]\)"):
        read_folder(root, 8)
    scipy.io.savemat(root / "setid.mat", {"trnid": np.array([[1, 11]]), "valid": np.array([[2]])})
    with pytest.raises(DataError, match=r"'trnid' names image 11, but imagelabels.mat labels images 1..10"):
        read_folder(root, 8)
    (root / "imagelabels.mat").unlink()
    with pytest.raises(DataError, match=r"imagelabels.mat is missing \(Flowers-102 layout"):
        read_folder(root, 8)
    root = write_official(tmp_path / "b")
    (root / "jpg" / "image_00005.jpg").unlink()
    with pytest.raises(DataError, match=r"image .*jpg/image_00005.jpg is missing"):
        read_folder(root, 8)


def test_data_stage_reads_the_official_layout_through_the_cli(tmp_path):
    root = write_official(tmp_path / "flowers")
    m = Manifest.load(run_dir_of(stage_process("custom_ops", "data", tmp_path / "runs", [f"data.path={root}"])))
    assert m.data["records"]["data"]["layout"] == "flowers102-official"
    assert m.data["stages"]["data"]["metrics"] == {"train_images": 4, "valid_images": 3, "classes": 4}
    (root / "jpg" / "image_00002.jpg").write_bytes(b"\xff\xd8 cut")
    proc = stage_process("custom_ops", "data", tmp_path / "runs", [f"data.path={root}"])
    assert "cannot read image" in one_line_error(proc, "image_00002.jpg", during_run=True)
