"""The default sample: class-specific stripe textures written as JPEGs in the Flowers-102 layout.

Each class has its own stripe angle (random phase, colour and noise per image); the folder is read
back by ``data.read_folder``, the path a user's folder takes. Deterministic by seed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


def _texture(rng: np.random.Generator, label: int, classes: int, size: int) -> np.ndarray:
    angle = math.pi * label / classes
    freq = rng.uniform(0.35, 0.5)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = rng.uniform(0, 2 * math.pi)
    wave = np.sin(freq * (xx * math.cos(angle) + yy * math.sin(angle)) + phase)
    base = rng.uniform(0.2, 0.8, size=3)
    amp = rng.uniform(0.15, 0.3)
    img = base[None, None, :] + amp * wave[:, :, None] + rng.normal(0, 0.05, size=(size, size, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def write_sample(root: Path, classes: int, per_class: int, valid_per_class: int, size: int, seed: int) -> Path:
    """Generate the default sample in the Flowers-102 layout under ``root``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("valid", valid_per_class)):
        for c in range(classes):
            folder = root / split / str(c + 1)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(_texture(rng, c, classes, size)).save(
                    folder / f"image_{c + 1:03d}_{i:05d}.jpg", quality=95
                )
    names = {str(c + 1): f"stripes-{round(180 * c / classes)}deg" for c in range(classes)}
    (root / "cat_to_name.json").write_text(json.dumps(names, indent=1))
    return root
