"""The embedded default VQA set: coloured shapes on a 2 x 2 grid, with questions about them.

Written in the reader's own format (PNG images plus ``train.jsonl``/``val.jsonl``) and read back
by ``records.read_records``, the path a user's folder takes. Every question's answer depends on
the image (colour, shape, count or position), so a model must look to beat the question-only
baseline.
"""

from __future__ import annotations

import collections
import json
import random
from pathlib import Path
from typing import Any

COLORS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 230), "yellow": (235, 210, 40)}
SHAPES = ("circle", "square", "triangle")
NUMBERS = ("zero", "one", "two", "three", "four")  # data.max_objects goes up to 4


def _draw(draw: Any, shape: str, color: tuple[int, int, int], cx: int, cy: int, r: int) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=color)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)


def _question(rng: random.Random, objs: list[dict[str, Any]]) -> tuple[str, str]:
    """One question whose answer depends on the image (colour, shape, count or position)."""
    shapes = collections.Counter(o["shape"] for o in objs)
    colors = collections.Counter(o["color"] for o in objs)
    pairs = collections.Counter((o["color"], o["shape"]) for o in objs)
    # one kind drawn uniformly among those this image can answer, counting being one kind
    kinds = ["count"]
    if any(n == 1 for n in shapes.values()):
        kinds.append("color")
    if any(n == 1 for n in colors.values()):
        kinds.append("shape")
    if any(n == 1 for n in pairs.values()):
        kinds.append("position")
    kind = rng.choice(kinds)
    if kind == "count":
        kind = rng.choice(("count_shape", "count_all"))
    if kind == "color":
        o = rng.choice([o for o in objs if shapes[o["shape"]] == 1])
        return f"what color is the {o['shape']}?", o["color"]
    if kind == "shape":
        o = rng.choice([o for o in objs if colors[o["color"]] == 1])
        return f"what shape is the {o['color']} object?", o["shape"]
    if kind == "position":
        o = rng.choice([o for o in objs if pairs[(o["color"], o["shape"])] == 1])
        return f"is the {o['color']} {o['shape']} on the left or the right?", o["side"]
    if kind == "count_shape":
        s = rng.choice(SHAPES)
        return f"how many {s}s are there?", NUMBERS[shapes[s]]
    return "how many objects are there?", NUMBERS[len(objs)]


def generate_shapes(folder: Path, n_train: int, n_val: int, seed: int, canvas: int = 64, max_objects: int = 3) -> None:
    """Write the default VQA set (PNG images + train/val JSONL) into ``folder``."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    cell = canvas // 2
    for split, n in (("train", n_train), ("val", n_val)):
        lines = []
        for i in range(n):
            k = rng.randint(1, max_objects)
            cells = rng.sample(range(4), k)
            objs = []
            img = Image.new("RGB", (canvas, canvas), (245, 245, 245))
            d = ImageDraw.Draw(img)
            for c in cells:
                col, row = c % 2, c // 2
                r = rng.randint(cell // 4, cell // 3)
                cx = col * cell + cell // 2 + rng.randint(-2, 2)
                cy = row * cell + cell // 2 + rng.randint(-2, 2)
                o = {"shape": rng.choice(SHAPES), "color": rng.choice(sorted(COLORS)), "side": ("left", "right")[col]}
                _draw(d, o["shape"], COLORS[o["color"]], cx, cy, r)
                objs.append(o)
            name = f"images/{split}_{i:05d}.png"
            img.save(folder / name)
            q, a = _question(rng, objs)
            lines.append(json.dumps({"image": name, "question": q, "answers": [a]}))
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
