"""The generated sample data: person, dog and sheep shapes on varied backgrounds, in VOC layout.

Written exactly as a real VOC folder is laid out, then read back by the reader of ``data.py``
(the path a user's folder takes). Deterministic by seed: each image draws from its own
``np.random.default_rng((seed, index))``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mlx_core import atomic_dir

from .voc import IGNORE, VOC_CLASSES, voc_palette

SAMPLE_CLASSES = ("person", "dog", "sheep")


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
