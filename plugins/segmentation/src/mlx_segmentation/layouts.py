"""The dataset layouts the reader knows besides VOC2012 (``data.layout``):

``voc``  VOC2012 as downloaded: ``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png``,
         ``ImageSets/Segmentation/<split>.txt`` (``data.py``).
``sbd``  the Semantic Boundaries Dataset (Hariharan et al.) as downloaded: ``data.root`` is its
         ``dataset/`` folder (or the folder holding it, e.g. ``benchmark_RELEASE/``) with
         ``img/<id>.jpg``, ``cls/<id>.mat`` (a MATLAB struct ``GTcls`` whose ``Segmentation`` field
         holds the class ids, read with ``scipy.io.loadmat``) and ``train.txt`` / ``val.txt``.
``aug``  ``SegmentationClassAug`` (VOC2012 + SBD, 10,582 training masks): ``data.root`` is the
         VOC2012 folder with ``JPEGImages/`` and ``SegmentationClassAug/<id>.png`` next to it; the
         split file (``train_aug.txt``, ``val.txt``) lives in ``ImageSets/Segmentation/`` or in
         ``data.root``, one id per line, or DeepLab's two-column lists
         (``/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png``).

Every sample is checked when the split is indexed, as for VOC; a bad file is one ``DataError``
line naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlx_core import DataError

from .voc import IGNORE

LAYOUTS = ("voc", "sbd", "aug")


def _split_lines(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise DataError(f"split file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"split file {path} is not UTF-8 text (byte {exc.start}); expected one image id per line"
        ) from None
    rows = [line.split() for line in text.splitlines() if line.strip()]
    if not rows:
        raise DataError(f"split file {path} is empty: it lists no image ids")
    return rows


def split_ids(path: Path) -> list[str]:
    """The image ids (first column) of a split file; an id names a file, never a path."""
    return [_id(path, row[0]) for row in _split_lines(path)]


def _id(path: Path, sid: str) -> str:
    if "/" in sid or "\\" in sid or sid in (".", ".."):
        raise DataError(f"split file {path} lists {sid!r}; expected an image id (a file name without folders)")
    return sid


def _inside(root: Path, listed: str, split_file: Path, lineno: int) -> Path:
    """A path of a two-column list, relative to ``root`` (DeepLab writes them with a leading /)."""
    p = (root / listed.lstrip("/")).resolve()
    if not p.is_relative_to(root.resolve()):
        raise DataError(f"{split_file}:{lineno}: {listed!r} points outside data.root {root}")
    return p


def sbd_root(root: Path) -> Path:
    """SBD's ``dataset/`` folder: ``root`` itself or its ``dataset/`` child."""
    for cand in (root, root / "dataset"):
        if (cand / "img").is_dir() and (cand / "cls").is_dir():
            return cand
    raise DataError(f"data.root {root} is not an SBD folder: expected img/ and cls/ in it or in {root / 'dataset'}")


def pairs(root: Path, layout: str, split: str) -> list[tuple[str, Path, Path]]:
    """(id, image, mask) of every line of the split, files not yet opened."""
    if layout == "sbd":
        base = sbd_root(root)
        split_file = base / f"{split}.txt"
        return [(sid, base / "img" / f"{sid}.jpg", base / "cls" / f"{sid}.mat")
                for sid in split_ids(split_file)]  # fmt: skip
    # aug
    split_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not split_file.is_file() and (root / f"{split}.txt").is_file():
        split_file = root / f"{split}.txt"
    if not (root / "SegmentationClassAug").is_dir():
        raise DataError(f"data.root {root} has no SegmentationClassAug/ folder (data.layout=aug)")
    out = []
    for lineno, row in enumerate(_split_lines(split_file), start=1):
        if len(row) >= 2:  # DeepLab's list: image path and mask path
            image, mask = _inside(root, row[0], split_file, lineno), _inside(root, row[1], split_file, lineno)
            out.append((image.stem, image, mask))
        else:
            sid = _id(split_file, row[0])
            out.append((sid, root / "JPEGImages" / f"{sid}.jpg", root / "SegmentationClassAug" / f"{sid}.png"))
    return out


def load_mat_mask(path: Path, num_classes: int) -> np.ndarray:
    """Class ids (uint8 HxW) from SBD's ``cls/<id>.mat`` (``GTcls.Segmentation``)."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except FileNotFoundError:
        raise DataError(f"mask {path} does not exist") from None
    except (ValueError, TypeError, OSError, NotImplementedError) as exc:  # not a MATLAB file, a v7.3 (HDF5) one
        raise DataError(f"mask {path} is not a readable MATLAB .mat file ({type(exc).__name__}); "
                        "expected SBD's cls/<id>.mat") from None  # fmt: skip
    gt = mat.get("GTcls")
    seg = getattr(gt, "Segmentation", None)
    if seg is None:
        raise DataError(f"mask {path} has no GTcls.Segmentation (keys: {sorted(k for k in mat if not k.startswith('__'))}); "
                        "expected SBD's cls/<id>.mat")  # fmt: skip
    arr = np.asarray(seg)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
        raise DataError(
            f"mask {path}: GTcls.Segmentation is {arr.dtype} {arr.shape}; expected a 2-D array of class ids"
        )
    bad = np.unique(arr[((arr >= num_classes) & (arr != IGNORE)) | (arr < 0)])
    if bad.size:
        raise DataError(
            f"mask {path} contains class id {int(bad[0])}, but model.num_classes is {num_classes} "
            f"(expected ids 0..{num_classes - 1} or {IGNORE} for ignore)"
        )
    return arr.astype(np.uint8)
