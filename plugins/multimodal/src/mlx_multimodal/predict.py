"""Predict: answer questions about images with an exported run, using only the files in
``RUN_DIR/export`` (the ``torch.export`` program, tokenizer, answers, preprocessing); no
training or model-building code is imported.

    mlx predict multimodal RUN_DIR image.png "what color is the circle?" [image2.png "question 2" ...]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlx_core import DataError, RunError


def check_image(path: str | Path) -> None:
    """A ``DataError`` naming ``path`` unless it is a decodable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise DataError(f"image {path} is unreadable ({type(exc).__name__})") from None


class Predictor:
    """Reload of an export folder: ``Predictor(folder).top_k(image_path, question, k)``."""

    def __init__(self, folder: str | Path, device: str = "cpu") -> None:
        import torch
        from transformers import BertTokenizerFast

        folder = Path(folder)
        if not (folder / "model.pt2").is_file():
            raise RunError(f"{folder} has no exported model.pt2; run `mlx run multimodal export` first")
        self.device = device
        self.pre = json.loads((folder / "preprocess.json").read_text())
        self.answers = (folder / "answers.txt").read_text().splitlines()
        self.tokenizer = BertTokenizerFast.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
        self.program = torch.export.load(str(folder / "model.pt2"))
        self.module = self.program.module().to(device)

    def image_tensor(self, path: str | Path) -> Any:
        from PIL import Image, UnidentifiedImageError
        from torchvision.transforms import v2

        s = int(self.pre["image_size"])
        try:
            with Image.open(path) as im:
                x = v2.Resize((s, s), antialias=True)(v2.PILToTensor()(im.convert("RGB")))
        except FileNotFoundError:
            raise DataError(f"image {path} does not exist") from None
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise DataError(f"image {path} is unreadable ({type(exc).__name__})") from None
        return self.normalize(x.unsqueeze(0))

    def pil_tensor(self, image: Any) -> Any:
        """The model input of one decoded RGB ``PIL.Image`` (what ``mlx serve`` and ``mlx predict`` use)."""
        from torchvision.transforms import v2

        s = int(self.pre["image_size"])
        return self.normalize(v2.Resize((s, s), antialias=True)(v2.PILToTensor()(image)).unsqueeze(0))

    def normalize(self, images_uint8: Any) -> Any:
        x = images_uint8.float() / 255.0
        mean = x.new_tensor(self.pre["mean"]).view(1, 3, 1, 1)
        std = x.new_tensor(self.pre["std"]).view(1, 3, 1, 1)
        return (x - mean) / std

    def tokens(self, questions: list[str]) -> Any:
        enc = self.tokenizer(
            questions, max_length=int(self.pre["max_length"]), truncation=True, padding="max_length",
            return_tensors="pt",
        )  # fmt: skip
        return enc["input_ids"].long()

    def logits(self, images: Any, input_ids: Any) -> Any:
        import torch

        with torch.no_grad():
            return self.module(images.to(self.device), input_ids.to(self.device))

    def top_k(self, image: str | Path, question: str, k: int = 5) -> list[tuple[str, float]]:
        import torch

        probs = torch.softmax(self.logits(self.image_tensor(image), self.tokens([question])), -1)[0]
        p, i = probs.topk(min(k, probs.numel()))
        return [(self.answers[j], float(q)) for q, j in zip(p.tolist(), i.tolist(), strict=True)]


def predict(ctx: Any, inputs: list[str]) -> list[dict[str, Any]]:
    if len(inputs) % 2:
        raise DataError(
            f'expected pairs of IMAGE QUESTION, got {len(inputs)} input(s); e.g. shapes.png "what color is the circle?"'
        )
    pairs = list(zip(inputs[0::2], inputs[1::2], strict=True))
    for image, question in pairs:  # cheap checks before torch and the program are loaded
        if not question.strip():
            raise DataError(f"empty question for image {image}")
        check_image(image)
    from mlx_core.serving import b64

    from .serve import AskRequest, serve

    # the predictor `mlx serve` serves: the same decoding, program and answers
    predictor = serve(ctx)
    rows = []
    for image, question in pairs:
        (res,) = predictor.run([AskRequest(image=b64(Path(image).read_bytes()), question=question)])
        for rank, s in enumerate(res.top_k, start=1):
            rows.append({"image": image, "question": question, "rank": rank, "answer": s.answer,
                         "probability": s.probability})  # fmt: skip
    if ctx.output_dir is not None:
        from mlx_core import atomic_write_json

        atomic_write_json(ctx.output_dir / "predictions.json", rows)
    return rows
