"""Image classification data in either Flowers-102 layout: the readers and the data stage.

The official release (``jpg/``, ``imagelabels.mat``, ``setid.mat``) is read by ``flowers.py``;
the widely used image-folder release by ``read_folder`` here::

    root/train/<class>/*.jpg        root/valid/<class>/*.jpg        root/cat_to_name.json (optional)

Class folders are sorted (numerically when all names are numbers, as Flowers' "1".."102"); the
optional ``cat_to_name.json`` maps folder names to readable names. The default sample draws
class-specific textures (stripes at an angle per class, with random phase, colour and noise),
writes them as JPEGs in this layout (``sample.py``) and reads them back with the same reader.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlx_core import DataError

from .sample import write_sample

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp"}
SPLITS = ("train", "valid")
MEAN = np.array([0.5, 0.5, 0.5], dtype=np.float32)
STD = np.array([0.25, 0.25, 0.25], dtype=np.float32)


@dataclass
class Split:
    images: np.ndarray  # uint8 [N, H, W, 3]
    labels: np.ndarray  # int64 [N]
    files: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def normalized(self, idx=slice(None)) -> np.ndarray:
        """float32 [N, 3, H, W], standardised."""
        x = self.images[idx].astype(np.float32) / 255.0
        return ((x - MEAN) / STD).transpose(0, 3, 1, 2).copy()


@dataclass
class ImageData:
    root: Path
    classes: list[str]
    names: list[str]
    train: Split
    valid: Split
    image_size: int

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _class_dirs(split_dir: Path) -> list[str]:
    names = [p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    # isdecimal, not isdigit: "²" is a digit that int() refuses
    return sorted(names, key=lambda n: (0, int(n), n) if n.isdecimal() else (1, 0, n))


def read_image(f: Path, image_size: int) -> np.ndarray:
    """One image as uint8 [S, S, 3]; a one-line ``DataError`` naming the file otherwise."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(f) as im:
            return np.asarray(im.convert("RGB").resize((image_size, image_size), Image.BILINEAR), dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"image {f} is missing") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {f}: {exc}") from None


def _names(root: Path, classes: list[str]) -> list[str]:
    """Readable class names from the optional ``cat_to_name.json``, else the class names themselves."""
    mapping = root / "cat_to_name.json"
    if not mapping.is_file():
        return list(classes)
    try:
        table = json.loads(mapping.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(f"{mapping} is not valid JSON: {exc}") from None
    if not isinstance(table, dict):
        raise DataError(f"{mapping} holds a JSON {type(table).__name__}; expected an object of class folder -> name")
    return [str(table.get(c, c)) for c in classes]


def layout_of(root: str | Path) -> str:
    """``flowers102-official`` (jpg/ + .mat files) or ``flowers102-image-folder``."""
    from .flowers import is_official

    return "flowers102-official" if is_official(Path(root)) else "flowers102-image-folder"


def read_folder(root: str | Path, image_size: int) -> ImageData:
    """Either Flowers-102 layout: the official one (``flowers.py``) or class folders per split."""
    root = Path(root)
    if root.is_dir() and layout_of(root) == "flowers102-official":
        from .flowers import read_official

        classes, parts = read_official(root, image_size, read_image)
        splits = {k: Split(*v) for k, v in parts.items()}
        return ImageData(root, classes, _names(root, classes), splits["train"], splits["valid"], image_size)
    if not root.is_dir():
        raise DataError(
            f"data.path {str(root)!r} is not a directory (expected train/<class>/*.jpg and valid/<class>/*.jpg)"
        )
    for split in SPLITS:
        if not (root / split).is_dir():
            raise DataError(
                f"data.path {str(root)!r} has no {split}/ folder (Flowers-102 layout: {'/, '.join(SPLITS)}/)"
            )
    classes = _class_dirs(root / "train")
    if len(classes) < 2:
        raise DataError(f"{root / 'train'} has {len(classes)} class folder(s); expected at least 2")
    extra = set(_class_dirs(root / "valid")) - set(classes)
    if extra:
        raise DataError(f"{root / 'valid'} has class folder(s) {sorted(extra)} that train/ does not have")
    names = _names(root, classes)
    index = {c: i for i, c in enumerate(classes)}
    splits = {}
    for split in SPLITS:
        images, labels, files = [], [], []
        for c in classes:
            folder = root / split / c
            if not folder.is_dir():
                continue
            for f in sorted(folder.iterdir()):
                if f.suffix.lower() not in EXTENSIONS:
                    continue
                images.append(read_image(f, image_size))
                labels.append(index[c])
                files.append(str(f.relative_to(root)))
        if not images:
            raise DataError(f"{root / split} holds no images ({', '.join(sorted(EXTENSIONS))})")
        splits[split] = Split(np.stack(images), np.array(labels, dtype=np.int64), files)
    return ImageData(root, classes, names, splits["train"], splits["valid"], image_size)


def build(ctx) -> ImageData:
    from .config import check_distribution

    check_distribution(ctx.config, ctx.dist.world_size)  # before any work in every rank
    cfg = ctx.config.data
    if cfg.path:
        data = read_folder(cfg.path, cfg.image_size)
        ctx.log(
            f"read {len(data.train)} train / {len(data.valid)} valid images of {data.num_classes} classes from {cfg.path}"
        )
        ctx.record("data", {"path": str(cfg.path), "layout": layout_of(cfg.path)})
        _metrics(ctx, data)
        return data
    root = ctx.path("data", "sample")
    done = root / "cat_to_name.json"
    if not (ctx.resumed and done.is_file()):
        with ctx.atomic_dir("data", "sample") as tmp:  # the whole folder appears at once
            write_sample(
                tmp, cfg.sample_classes, cfg.sample_per_class, cfg.sample_valid_per_class, max(cfg.image_size, 32),
                ctx.seed,
            )  # fmt: skip
    data = read_folder(root, cfg.image_size)
    ctx.add_artifact(done, kind="dataset", layout="flowers102-image-folder", root=str(root.relative_to(ctx.run_dir)),
                     train=len(data.train), valid=len(data.valid), classes=data.num_classes)  # fmt: skip
    _metrics(ctx, data)
    return data


def _metrics(ctx, data: ImageData) -> None:
    ctx.log_metrics({"train_images": len(data.train), "valid_images": len(data.valid), "classes": data.num_classes})
