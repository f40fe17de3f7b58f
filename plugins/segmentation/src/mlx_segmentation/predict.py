"""Masks and overlays from an exported artifact: ``mlx predict segmentation RUN_DIR img.jpg ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mlx_core import RunContext, atomic_path

from .data import eval_transform, load_image, voc_palette


def mask_image(mask: np.ndarray) -> Image.Image:
    """A palette PNG of class ids in the VOC colours (what SegmentationClass/ holds)."""
    im = Image.fromarray(mask.astype(np.uint8), mode="L").convert("P")
    im.putpalette(voc_palette())
    return im


def overlay(image: Image.Image, mask: np.ndarray, alpha: float) -> Image.Image:
    """The image with every non-background pixel tinted in its class's VOC colour."""
    pal = np.asarray(voc_palette(), dtype=np.float32).reshape(256, 3)
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    colour = pal[mask]
    a = np.where(mask[..., None] > 0, alpha, 0.0)
    return Image.fromarray(np.clip(base * (1 - a) + colour * a, 0, 255).astype(np.uint8))


def segment(runner, image: Image.Image, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask at the image's own size, logits at size x size) for one RGB image."""
    x, _ = eval_transform(image, None, size)
    logits = runner(x[None])
    small = logits[0].argmax(0).astype(np.uint8)
    mask = np.asarray(Image.fromarray(small).resize(image.size, Image.NEAREST))
    return mask, logits


def summary(mask: np.ndarray, names: list[str]) -> str:
    ids, counts = np.unique(mask, return_counts=True)
    parts = [
        (c / mask.size, names[i] if i < len(names) else str(i)) for i, c in zip(ids, counts, strict=True) if i != 0
    ]
    return ", ".join(f"{n} {f:.0%}" for f, n in sorted(parts, reverse=True)) or "background only"


def predict(ctx: RunContext, inputs: list[str]) -> list[dict[str, Any]]:
    """Run the predictor ``mlx serve`` serves (``serve.serve``) on files: the same output."""
    from mlx_core.serving import b64

    from .serve import SegmentRequest, serve

    sources = [Path(p) for p in inputs]
    for src in sources:  # every input checked (one line naming it) before any work
        load_image(src)
    predictor = serve(ctx)
    out_dir = ctx.output_dir or ctx.path("predictions")
    rows, used = [], set()
    for src in ctx.track(sources, f"predict ({predictor.facts['format']})"):
        stem = src.stem
        k = 1
        while stem in used:
            k += 1
            stem = f"{src.stem}-{k}"
        used.add(stem)
        (res,) = predictor.run([SegmentRequest(image=b64(src.read_bytes()))])
        for part in ("mask", "overlay"):
            with atomic_path(out_dir / f"{stem}_{part}.png") as tmp:
                tmp.write_bytes(getattr(res, part))
        rows.append(
            {
                "input": str(src),
                "size": res.size,
                "classes": res.classes,
                "mask": str(out_dir / f"{stem}_mask.png"),
                "overlay": str(out_dir / f"{stem}_overlay.png"),
                "format": res.format,
            }
        )
    return rows
