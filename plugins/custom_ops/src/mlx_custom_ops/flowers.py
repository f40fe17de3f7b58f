"""Oxford Flowers-102 as downloaded from the Visual Geometry Group (robots.ox.ac.uk/~vgg/data/flowers/102)::

    root/jpg/image_00001.jpg ... image_08189.jpg     (102flowers.tgz)
    root/imagelabels.mat                             ("labels": 1 x N, classes 1..102)
    root/setid.mat                                   ("trnid", "valid", "tstid": 1-based image numbers)
    root/cat_to_name.json                            (optional: class number -> flower name)

Read with ``scipy.io.loadmat``. The plugin's ``train`` split is ``trnid``, its ``valid`` split is
``valid`` (``tstid``, the official test split, is counted but not loaded). Classes are the label
numbers present, sorted, as strings ("1".."102"), like the image-folder layout's folder names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlx_core import DataError

SETS = {"train": "trnid", "valid": "valid"}


def is_official(root: Path) -> bool:
    return (root / "imagelabels.mat").exists() or (root / "setid.mat").exists()


def _loadmat(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named integer vectors of a MATLAB file, as 1-D int64 arrays; one-line errors otherwise."""
    import scipy.io

    if not path.is_file():
        raise DataError(f"{path} is missing (Flowers-102 layout: jpg/, imagelabels.mat, setid.mat)")
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:  # noqa: BLE001 - scipy raises ValueError/TypeError/OSError/... for non-MAT files
        raise DataError(f"{path} is not a MATLAB .mat file ({type(exc).__name__}: {str(exc)[:80]})") from None
    out = {}
    for key in keys:
        if key not in mat:
            found = sorted(k for k in mat if not k.startswith("__"))
            raise DataError(f"{path} has no {key!r} array (found {found}); expected {', '.join(keys)}")
        arr = np.asarray(mat[key])
        if arr.dtype.kind not in "iuf" or arr.size == 0 or (arr.dtype.kind == "f" and not np.all(arr == arr.round())):
            raise DataError(f"{path}: {key!r} must be a non-empty vector of whole numbers, got {arr.dtype} {arr.shape}")
        out[key] = arr.reshape(-1).astype(np.int64)
    return out


def read_official(root: Path, image_size: int, read_image) -> tuple[list[str], dict[str, tuple]]:
    """(classes, {split: (images uint8 [N,S,S,3], labels int64 [N], files)}) of an official Flowers-102 root.

    ``read_image(path, size)`` decodes one image (the image-folder reader's, so errors read the same)."""
    labels = _loadmat(root / "imagelabels.mat", ("labels",))["labels"]
    sets = _loadmat(root / "setid.mat", tuple(SETS.values()))
    if not (root / "jpg").is_dir():
        raise DataError(f"{root} has no jpg/ folder (Flowers-102 layout: jpg/image_00001.jpg ..., from 102flowers.tgz)")
    classes = [str(c) for c in sorted(set(labels.tolist()))]
    index = {int(c): i for i, c in enumerate(classes)}
    splits = {}
    for split, key in SETS.items():
        ids = sets[key]
        bad = ids[(ids < 1) | (ids > len(labels))]
        if bad.size:
            raise DataError(f"{root / 'setid.mat'}: {key!r} names image {int(bad[0])}, but imagelabels.mat labels "
                            f"images 1..{len(labels)}")  # fmt: skip
        files = [f"jpg/image_{i:05d}.jpg" for i in ids.tolist()]
        images = [read_image(root / f, image_size) for f in files]
        y = np.array([index[int(labels[i - 1])] for i in ids.tolist()], dtype=np.int64)
        splits[split] = (np.stack(images), y, files)
    return classes, splits
