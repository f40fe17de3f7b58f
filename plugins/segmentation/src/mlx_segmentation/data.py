"""Pascal VOC-format segmentation data: a reader, its transforms, and a sample-data generator.

Layout (the same for a real VOC2012 folder and for the generated sample)::

    ROOT/JPEGImages/<id>.jpg
    ROOT/SegmentationClass/<id>.png          palette PNG, pixel = class id, 255 = ignore
    ROOT/ImageSets/Segmentation/<split>.txt  one id per line
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from mlx_core import DataError, atomic_dir

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
IGNORE = 255
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SAMPLE_CLASSES = ("person", "dog", "sheep")


def voc_palette() -> list[int]:
    """The standard VOC colour map (768 ints: r, g, b for ids 0..255; 255 is cream-white)."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def class_names(num_classes: int) -> list[str]:
    return [VOC_CLASSES[i] if i < len(VOC_CLASSES) else f"class{i}" for i in range(num_classes)]


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
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"split file {path} is not UTF-8 text (byte {exc.start}); expected one image id per line"
        ) from None
    ids = [line.split()[0] for line in text.splitlines() if line.strip()]
    if not ids:
        raise DataError(f"split file {path} is empty: it lists no image ids")
    for sid in ids:  # an id names a file inside JPEGImages/ and SegmentationClass/, never a path
        if "/" in sid or "\\" in sid or sid in (".", ".."):
            raise DataError(f"split file {path} lists {sid!r}; expected an image id (a file name without folders)")
    return ids


@dataclass
class Sample:
    id: str
    image: Path
    mask: Path


def index_split(root: Path, split: str, num_classes: int) -> list[Sample]:
    """Every sample of a split, checked: image and mask exist, masks hold only valid ids."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data.root {root} is not a directory")
    samples = []
    for sid in read_split(root, split):
        image = root / "JPEGImages" / f"{sid}.jpg"
        if not image.is_file():
            raise DataError(f"id {sid!r} in split {split!r} has no image: {image} does not exist")
        mask = root / "SegmentationClass" / f"{sid}.png"
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
                 scale: tuple[float, float] = (0.75, 1.25), hflip: bool = True, seed: int = 0):  # fmt: skip
        self.root, self.split, self.num_classes, self.size = Path(root), split, num_classes, size
        self.train, self.scale, self.hflip, self.seed = train, scale, hflip, seed
        self.samples = index_split(self.root, split, num_classes)
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


# --- the generated sample dataset ----------------------------------------------------------------
def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A varied backdrop: two-colour gradient (sky/field, wall/floor, ...), blotches, pixel noise."""
    top, bottom = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    t = np.linspace(0, 1, h)[:, None, None]
    img = top * (1 - t) + bottom * t + np.zeros((1, w, 1))
    coarse = rng.normal(0, 18, (max(2, h // 16), max(2, w // 16), 3))
    for c in range(3):  # smooth low-frequency blotches per channel
        blot = Image.fromarray(coarse[..., c].astype(np.float32)).resize((w, h), Image.BICUBIC)
        img[..., c] += np.asarray(blot)
    img += rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255)


def _jitter(rng: np.random.Generator, rgb: tuple[int, int, int], amount: float = 25) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.uniform(-amount, amount), 0, 255)) for c in rgb)  # type: ignore[return-value]


def _draw_person(d: list[ImageDraw.ImageDraw], rng, cx, cy, s, cid):
    img, msk = d
    shirt = _jitter(rng, [(200, 40, 40), (40, 60, 190), (230, 190, 30), (40, 150, 60)][rng.integers(4)], 30)
    skin = _jitter(rng, (224, 172, 140), 30)
    legs = _jitter(rng, (40, 40, 70), 20)
    hw, hh = 0.22 * s, 0.5 * s
    for draw, c_head, c_body, c_legs in ((img, skin, shirt, legs), (msk, cid, cid, cid)):
        draw.ellipse([cx - 0.14 * s, cy - hh - 0.3 * s, cx + 0.14 * s, cy - hh - 0.02 * s], fill=c_head)
        draw.rounded_rectangle([cx - hw, cy - hh, cx + hw, cy + 0.1 * s], radius=int(0.06 * s) + 1, fill=c_body)
        draw.rectangle([cx - hw * 0.8, cy + 0.1 * s, cx - hw * 0.15, cy + hh + 0.1 * s], fill=c_legs)
        draw.rectangle([cx + hw * 0.15, cy + 0.1 * s, cx + hw * 0.8, cy + hh + 0.1 * s], fill=c_legs)


def _draw_dog(d, rng, cx, cy, s, cid):
    img, msk = d
    fur = _jitter(rng, [(120, 72, 30), (90, 55, 25), (160, 110, 60), (30, 25, 20)][rng.integers(4)], 20)
    face = -1 if rng.random() < 0.5 else 1
    for draw, c in ((img, fur), (msk, cid)):
        draw.ellipse([cx - 0.45 * s, cy - 0.2 * s, cx + 0.45 * s, cy + 0.2 * s], fill=c)  # body
        hx = cx + face * 0.45 * s
        draw.ellipse([hx - 0.17 * s, cy - 0.38 * s, hx + 0.17 * s, cy - 0.06 * s], fill=c)  # head
        draw.polygon([(hx, cy - 0.3 * s), (hx + face * 0.3 * s, cy - 0.2 * s), (hx, cy - 0.12 * s)], fill=c)  # snout
        for lx in (-0.32, -0.15, 0.15, 0.32):
            draw.rectangle([cx + lx * s - 0.04 * s, cy, cx + lx * s + 0.04 * s, cy + 0.42 * s], fill=c)
        tx = cx - face * 0.45 * s
        draw.line([(tx, cy - 0.05 * s), (tx - face * 0.2 * s, cy - 0.3 * s)], fill=c, width=max(1, int(0.06 * s)))


def _draw_sheep(d, rng, cx, cy, s, cid):
    img, msk = d
    wool = _jitter(rng, (235, 232, 220), 15)
    head = _jitter(rng, (50, 45, 45), 15)
    face = -1 if rng.random() < 0.5 else 1
    puffs = [(rng.uniform(-0.32, 0.32), rng.uniform(-0.12, 0.12), rng.uniform(0.14, 0.22)) for _ in range(7)]
    for draw, cw, ch in ((img, wool, head), (msk, cid, cid)):
        for lx in (-0.25, -0.1, 0.1, 0.25):
            draw.rectangle([cx + lx * s - 0.035 * s, cy, cx + lx * s + 0.035 * s, cy + 0.4 * s], fill=ch)
        draw.ellipse([cx - 0.4 * s, cy - 0.22 * s, cx + 0.4 * s, cy + 0.22 * s], fill=cw)
        for px, py, r in puffs:
            draw.ellipse([cx + (px - r) * s, cy + (py - r) * s, cx + (px + r) * s, cy + (py + r) * s], fill=cw)
        hx = cx + face * 0.45 * s
        draw.ellipse([hx - 0.12 * s, cy - 0.25 * s, hx + 0.12 * s, cy + 0.02 * s], fill=ch)


DRAWERS = {"person": _draw_person, "dog": _draw_dog, "sheep": _draw_sheep}


def render_sample(rng: np.random.Generator, h: int, w: int, max_objects: int) -> tuple[Image.Image, Image.Image]:
    """One image (RGB) and its mask (palette PNG, VOC ids, 255 on object outlines)."""
    base = Image.fromarray(_background(rng, h, w).astype(np.uint8))
    mask = Image.new("L", (w, h), 0)
    di, dm = ImageDraw.Draw(base), ImageDraw.Draw(mask)
    n = int(rng.integers(1, max_objects + 1))
    objects = []
    for _ in range(n):
        name = SAMPLE_CLASSES[int(rng.integers(len(SAMPLE_CLASSES)))]
        s = rng.uniform(0.3, 0.6) * min(h, w)
        cx, cy = rng.uniform(0.2 * w, 0.8 * w), rng.uniform(0.3 * h, 0.7 * h)
        objects.append((cy, name, cx, s))
    for cy, name, cx, s in sorted(objects):  # nearer (lower) objects drawn last, on top
        DRAWERS[name]((di, dm), rng, cx, cy, s, VOC_CLASSES.index(name))
    # VOC marks a thin band around object boundaries as "void" (255); do the same
    arr = np.asarray(mask)
    edge = np.zeros_like(arr, dtype=bool)
    edge[1:, :] |= arr[1:, :] != arr[:-1, :]
    edge[:, 1:] |= arr[:, 1:] != arr[:, :-1]
    out = arr.copy()
    out[edge] = IGNORE
    noisy = np.asarray(base, dtype=np.float32) + rng.normal(0, 5, (h, w, 3))
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    m = Image.fromarray(out, mode="L").convert("P")
    m.putpalette(voc_palette())
    return image, m


def generate_sample(root: Path, n_train: int, n_val: int, size: int, seed: int, max_objects: int = 3) -> Path:
    """Write a deterministic sample dataset in VOC layout at ``root`` (atomically: a temp folder
    beside it is renamed into place when complete)."""
    root = Path(root)
    with atomic_dir(root) as tmp:
        for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
            (tmp / sub).mkdir(parents=True)
        splits: dict[str, list[str]] = {"train": [], "val": []}
        for i in range(n_train + n_val):
            split = "train" if i < n_train else "val"
            rng = np.random.default_rng((seed, i))
            sid = f"sample_{i:05d}"
            h = int(size * rng.uniform(1.0, 1.25))
            w = int(h * rng.uniform(1.0, 1.4))
            image, mask = render_sample(rng, h, w, max_objects)
            image.save(tmp / "JPEGImages" / f"{sid}.jpg", quality=92)
            mask.save(tmp / "SegmentationClass" / f"{sid}.png")
            splits[split].append(sid)
        for split, ids in splits.items():
            (tmp / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{s}\n" for s in ids))
        (tmp / "README.txt").write_text(
            f"Generated sample data in Pascal VOC layout (seed {seed}): {n_train} train / {n_val} val images of "
            f"{', '.join(SAMPLE_CLASSES)} on varied backgrounds. Masks: palette PNG, VOC class ids, 255 = ignore.\n"
        )
    return root


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
    common = {"num_classes": num_classes, "size": cfg.image_size, "seed": ctx.seed}
    scale = (min(cfg.scale_min, cfg.scale_max), max(cfg.scale_min, cfg.scale_max))
    train = VOCSegmentation(root, cfg.train_split, train=True, scale=scale, hflip=cfg.hflip, **common)
    val = VOCSegmentation(root, cfg.val_split, **common)
    load_image(val.samples[0].image)  # the export's sample image; fail here, not after training
    for ds in (train, val):
        for s in ds.samples:
            load_image(s.image)
    ctx.log_metrics({"train_images": len(train), "val_images": len(val)})
    ctx.record("data", {"root": str(root), "generated": generated, "train": len(train), "val": len(val)})
    if generated:
        ctx.add_artifact(root / "ImageSets" / "Segmentation" / "train.txt", kind="dataset", images=len(train))
        ctx.add_artifact(root / "ImageSets" / "Segmentation" / "val.txt", kind="dataset", images=len(val))
    return SegData(
        root=root, train=train, val=val, num_classes=num_classes, classes=class_names(num_classes), generated=generated
    )
