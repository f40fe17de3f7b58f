"""The model uses the image: trained on a set whose answers only the image holds, it beats the same
model trained the same way with the images zeroed (the question-only model), not just the majority answer."""

from __future__ import annotations

import json
import random

import torch
from mlx_multimodal import data as D
from mlx_multimodal.metrics import split_vqa_accuracy
from mlx_multimodal.model import build_model
from mlx_multimodal.train import train

from .conftest import stage_ctx

COLOURS = {"red": (220, 30, 30), "green": (30, 190, 40), "blue": (30, 40, 220), "yellow": (230, 210, 30)}
QUESTIONS = ("what color is the picture?", "which colour does the image show?", "what is the colour here?")


def write_colour_set(root, n_train=120, n_val=60, seed=0):
    """Solid-colour images with a small darker square at a random place; the answer is the colour, and
    each question text goes with every colour equally often (the question alone says nothing)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    (root / "images").mkdir(parents=True)
    for split, n in (("train", n_train), ("val", n_val)):
        lines = []
        for i in range(n):
            colour = sorted(COLOURS)[i % 4]
            rgb = tuple(max(0, c + rng.randint(-25, 25)) for c in COLOURS[colour])
            img = Image.new("RGB", (32, 32), rgb)
            x, y = rng.randint(0, 24), rng.randint(0, 24)
            ImageDraw.Draw(img).rectangle([x, y, x + 7, y + 7], fill=tuple(c // 2 for c in rgb))
            name = f"images/{split}_{i}.png"
            img.save(root / name)
            lines.append(json.dumps({"image": name, "question": QUESTIONS[(i // 4) % 3], "answers": [colour]}))
        (root / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_image_model_beats_the_question_only_model(tmp_path):
    root = write_colour_set(tmp_path / "colours")
    accs = {}
    for name in ("image", "question_only"):
        ctx = stage_ctx(tmp_path / name, path=str(root), wordpiece_vocab_size=60,
                        model={"hidden_size": 16, "image_layers": 1, "text_layers": 1, "dropout": 0.0},
                        train={"epochs": 4, "batch_size": 8, "lr": 3e-3})  # fmt: skip
        data = D.build_data(ctx)
        if name == "question_only":  # the same model and schedule, with nothing to see
            data.train.images.zero_()
            data.val.images.zero_()
        model = train(ctx, data, build_model(ctx, data))
        accs[name] = split_vqa_accuracy(model, data.val, data.answers, "cpu")  # one answer each: top-1
    torch.testing.assert_close(data.question_baseline, 0.25, atol=0.02, rtol=0)  # the question alone: chance
    assert accs["question_only"] < 0.4, accs
    assert accs["image"] > accs["question_only"] + 0.35, accs
