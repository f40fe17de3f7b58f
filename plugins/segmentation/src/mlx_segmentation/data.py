"""Pascal VOC-format segmentation data: the reader, its transforms and the data stage.

Layout (the same for a real VOC2012 folder and for the generated sample)::

    ROOT/JPEGImages/<id>.jpg
    ROOT/SegmentationClass/<id>.png          palette PNG, pixel = class id, 255 = ignore
    ROOT/ImageSets/Segmentation/<split>.txt  one id per line

The format's fixed facts are in ``voc.py``, the generated sample in ``sample.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mlx_core import DataError

from .sample import SAMPLE_CLASSES, generate_sample
from .voc import IGNORE, VOC_CLASSES, class_names, voc_palette

__all__ = [
    "IGNORE", "MEAN", "SAMPLE_CLASSES", "STD", "VOC_CLASSES", "SegData", "VOCSegmentation", "build_data",
    "class_names", "eval_transform", "generate_sample", "index_split", "load_image", "load_mask", "normalize",
    "read_split", "train_transform", "voc_palette",
]  # fmt: skip

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


# --- reading -----------------------------------------------------------------------------------
def load_image(path: str | os.PathLike) -> Image.Image:
    """An RGB image; grayscale, RGBA, palette and CMYK inputs are converted, non-images refused."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "RGBA" or (im.mode in ("LA", "P") and "transparency" in im.info):
                # composite on black, as a viewer would, rather than keeping garbage under alpha 0
                im = im.convert("RGBA")
                bg = Image.new("RGB", im.size)
                bg.paste(im, mask=im.getchannel("A"))
                return bg
            return im.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path} is not a readable image ({type(exc).__name__}); expected a JPEG or PNG file") from None


def load_mask(path: Path, num_classes: int) -> np.ndarray:
    """Class ids (uint8 HxW) from a palette/grayscale PNG; refuses ids >= num_classes other than 255."""
    if Path(path).suffix.lower() == ".mat":  # SBD's cls/<id>.mat (data.layout=sbd)
        from .layouts import load_mat_mask

        return load_mat_mask(Path(path), num_classes)
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise DataError(
                    f"mask {path} has mode {im.mode}; expected a palette (P) or grayscale (L) PNG of class ids"
                )
            arr = np.array(im)
    except FileNotFoundError:
        raise DataError(f"mask {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"mask {path} is not a readable PNG ({type(exc).__name__})") from None
    bad = np.unique(arr[(arr >= num_classes) & (arr != IGNORE)])
    if bad.size:
        raise DataError(
            f"mask {path} contains class id {int(bad[0])}, but model.num_classes is {num_classes} "
            f"(expected ids 0..{num_classes - 1} or {IGNORE} for ignore)"
        )
    return arr


def read_split(root: Path, split: str) -> list[str]:
    path = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not path.is_file():
        raise DataError(f"split file {path} does not exist (expected a VOC layout: ImageSets/Segmentation/{split}.txt)")
    from .layouts import split_ids  # one reader of id lists for every layout (UTF-8, not empty, no paths)

    return split_ids(path)


@dataclass
class Sample:
    id: str
    image: Path
    mask: Path


def index_split(root: Path, split: str, num_classes: int, layout: str = "voc") -> list[Sample]:
    """Every sample of a split, checked: image and mask exist, masks hold only valid ids
    (``layout``: ``voc``, or SBD / SegmentationClassAug, see ``layouts.py``)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data.root {root} is not a directory")
    if layout != "voc":
        from .layouts import pairs

        found = pairs(root, layout, split)
    else:
        found = [(sid, root / "JPEGImages" / f"{sid}.jpg", root / "SegmentationClass" / f"{sid}.png")
                 for sid in read_split(root, split)]  # fmt: skip
    samples = []
    for sid, image, mask in found:
        if not image.is_file():
            raise DataError(f"id {sid!r} in split {split!r} has no image: {image} does not exist")
        if not mask.is_file():
            raise DataError(f"id {sid!r} in split {split!r} has no mask: {mask} does not exist")
        load_mask(mask, num_classes)
        samples.append(Sample(sid, image, mask))
    return samples


# --- transforms ---------------------------------------------------------------------------------
def normalize(image: Image.Image) -> np.ndarray:
    """HxWx3 uint8 image -> 3xHxW float32, ToTensor + Normalize(mean, std)."""
    arr = np.asarray(image, dtype=np.float32) / 255.0
    arr = (arr - np.asarray(MEAN, dtype=np.float32)) / np.asarray(STD, dtype=np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def eval_transform(image: Image.Image, mask: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Inference: resize to size x size (the exported models take that fixed shape)."""
    x = normalize(image.resize((size, size), Image.BILINEAR))
    y = None
    if mask is not None:
        y = np.asarray(Image.fromarray(mask).resize((size, size), Image.NEAREST), dtype=np.int64)
    return x, y


def train_transform(
    image: Image.Image, mask: np.ndarray, size: int, rng: np.random.Generator, scale: tuple[float, float], hflip: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Training: random rescale (short side = size * s), random crop (padded), random flip."""
    s = rng.uniform(*scale) * size / min(image.size)
    w, h = max(1, round(image.width * s)), max(1, round(image.height * s))
    image = image.resize((w, h), Image.BILINEAR)
    m = Image.fromarray(mask).resize((w, h), Image.NEAREST)
    pw, ph = max(size - w, 0), max(size - h, 0)
    if pw or ph:
        padded = Image.new("RGB", (w + pw, h + ph), tuple(int(255 * c) for c in MEAN))
        padded.paste(image)
        pm = Image.new("L", (w + pw, h + ph), IGNORE)
        pm.paste(m)
        image, m, w, h = padded, pm, w + pw, h + ph
    x0, y0 = int(rng.integers(0, w - size + 1)), int(rng.integers(0, h - size + 1))
    box = (x0, y0, x0 + size, y0 + size)
    image, m = image.crop(box), m.crop(box)
    if hflip and rng.random() < 0.5:
        image, m = image.transpose(Image.FLIP_LEFT_RIGHT), m.transpose(Image.FLIP_LEFT_RIGHT)
    return normalize(image), np.asarray(m, dtype=np.int64)


class VOCSegmentation:
    """A torch-style dataset (``len`` and ``[i]`` -> (3xHxW float32, HxW int64)) over a VOC split."""

    def __init__(self, root: Path, split: str, num_classes: int, size: int, train: bool = False,
                 scale: tuple[float, float] = (0.75, 1.25), hflip: bool = True, seed: int = 0,
                 layout: str = "voc"):  # fmt: skip
        self.root, self.split, self.num_classes, self.size = Path(root), split, num_classes, size
        self.train, self.scale, self.hflip, self.seed = train, scale, hflip, seed
        self.samples = index_split(self.root, split, num_classes, layout)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        s = self.samples[i]
        image = load_image(s.image)
        mask = load_mask(s.mask, self.num_classes)
        if image.size != (mask.shape[1], mask.shape[0]):
            raise DataError(
                f"mask {s.mask} is {mask.shape[1]}x{mask.shape[0]} but image {s.image} is {image.width}x{image.height}"
            )
        if self.train:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            return train_transform(image, mask, self.size, rng, self.scale, self.hflip)
        return eval_transform(image, mask, self.size)


@dataclass
class SegData:
    """What the data stage hands to the later stages."""

    root: Path
    train: VOCSegmentation
    val: VOCSegmentation
    num_classes: int
    classes: list[str]
    generated: bool


def build_data(ctx) -> SegData:
    """The data stage: a VOC folder from ``data.root``, or the generated sample (reused under --from)."""
    cfg, num_classes = ctx.config.data, ctx.config.model.num_classes
    generated = cfg.root is None
    if generated:
        root = ctx.path("data", "voc-sample")
        marker = root / "ImageSets" / "Segmentation" / "val.txt"
        if ctx.resumed and marker.is_file():
            ctx.log(f"reusing the sample data in {root.relative_to(ctx.run_dir)}")
        else:
            with ctx.progress("generate sample data", total=None):
                generate_sample(root, cfg.sample_train, cfg.sample_val, cfg.image_size, ctx.seed, cfg.max_objects)
        needed = max(SAMPLE_CLASSES, key=VOC_CLASSES.index)
        if num_classes <= VOC_CLASSES.index(needed):
            from mlx_core import ConfigError

            raise ConfigError(
                f"model.num_classes={num_classes} is too small for the sample data, which uses VOC ids up to "
                f"{VOC_CLASSES.index(needed)} ({needed}); use model.num_classes >= {VOC_CLASSES.index(needed) + 1}"
            )
    else:
        root = Path(cfg.root).expanduser()
    if generated and cfg.layout != "voc":
        from mlx_core import ConfigError

        raise ConfigError(f"data.layout={cfg.layout} reads a downloaded dataset: set data.root (the sample is VOC)")
    common = {"num_classes": num_classes, "size": cfg.image_size, "seed": ctx.seed, "layout": cfg.layout}
    scale = (min(cfg.scale_min, cfg.scale_max), max(cfg.scale_min, cfg.scale_max))
    train = VOCSegmentation(root, cfg.train_split, train=True, scale=scale, hflip=cfg.hflip, **common)
    val = VOCSegmentation(root, cfg.val_split, **common)
    load_image(val.samples[0].image)  # the export's sample image; fail here, not after training
    for ds in (train, val):
        for s in ds.samples:
            load_image(s.image)
    ctx.log_metrics({"train_images": len(train), "val_images": len(val)})
    ctx.record("data", {"root": str(root), "layout": cfg.layout, "generated": generated, "train": len(train),
                        "val": len(val)})  # fmt: skip
    if generated:
        ctx.add_artifact(root / "ImageSets" / "Segmentation" / "train.txt", kind="dataset", images=len(train))
        ctx.add_artifact(root / "ImageSets" / "Segmentation" / "val.txt", kind="dataset", images=len(val))
    return SegData(
        root=root, train=train, val=val, num_classes=num_classes, classes=class_names(num_classes), generated=generated
    )
