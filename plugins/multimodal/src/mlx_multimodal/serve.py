"""The VQA predictor: what ``mlx serve`` serves and ``mlx predict`` runs (stage table ``serve``).

An image and a question in, the answer and the top-k answers with their probabilities out, from
the ``torch.export`` program and the files beside it (tokenizer, answers, preprocessing), each
checked against the sha256 the run recorded; no training or model-building code is imported.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from mlx_core import DataError, ImageBytes, Predictor, Request, Response, RunContext, RunError

# an 8x8 black PNG: the example in /docs
EXAMPLE_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEklEQVR4nGNgGAWjYBSMAggAAAQIAAGcHkOaAAAAAElFTkSuQmCC"
#: what the export records and the reader loads
FILES = ("model.pt2", "answers.txt", "preprocess.json", "tokenizer/vocab.txt")


class AskRequest(Request):
    image: ImageBytes = Field(description="a JPEG or PNG image (base64 in JSON, a file in a form)")
    question: str = Field(min_length=1, max_length=2000, description="a question about the image")


class Scored(BaseModel):
    answer: str
    probability: float = Field(description="softmax probability, rounded to 4 digits")


class AskResponse(Response):
    answer: str = Field(description="the most probable answer")
    top_k: list[Scored] = Field(description="the predict.top_k most probable answers, best first")


def serve(ctx: RunContext, format: str | None = None) -> Predictor:
    if format not in (None, "torch.export"):
        raise RunError(f"multimodal serves its torch.export program; there is no format {format!r}")
    folder = ctx.run_dir / "export"
    if not (folder / "model.pt2").is_file():
        raise RunError(f"{folder} has no exported model.pt2; run `mlx run multimodal export` first")
    for name in FILES:
        ctx.verify_artifact(folder / name)

    import torch

    from mlx_core.serving import decode_image

    from .predict import Predictor as Reader

    reader = Reader(folder, device=ctx.device)
    k = ctx.config.predict.top_k

    def prepare(req: AskRequest) -> tuple[Any, str]:
        if not req.question.strip():
            raise DataError("the question is blank; expected a question about the image")
        return reader.pil_tensor(decode_image(req.image, "the uploaded image")), req.question

    def predict(items: list[tuple[Any, str]]) -> list[AskResponse]:
        out = []
        for x, question in items:
            probs = torch.softmax(reader.logits(x, reader.tokens([question])), -1)[0]
            p, i = probs.topk(min(k, probs.numel()))
            top = [Scored(answer=reader.answers[j], probability=round(float(q), 4))
                   for q, j in zip(p.tolist(), i.tolist(), strict=True)]  # fmt: skip
            out.append(AskResponse(answer=top[0].answer, top_k=top))
        return out

    return Predictor(
        request=AskRequest,
        response=AskResponse,
        prepare=prepare,
        predict=predict,
        batches=False,
        title="visual question answering (torch.export): pick an image, ask a question, get the answer",
        examples=[{"image": EXAMPLE_PNG, "question": "what color is the circle?"}],
        facts={"format": "torch.export", "runtime": "torch.export", "answers": len(reader.answers), "top_k": k,
               "image_size": reader.pre["image_size"]},
    )  # fmt: skip
