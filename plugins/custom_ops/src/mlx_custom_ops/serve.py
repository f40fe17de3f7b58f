"""The RedNet classifier's predictor: what ``mlx serve`` serves and ``mlx predict`` runs (stage
table ``serve``).

An image in, the ``predict.top_k`` classes with their softmax probabilities out, from the
exported model and the files beside it, each checked against the sha256 the run recorded: the
``torch.export`` program (``export/model.pt2``) or the Paddle inference model
(``export/model.json`` + ``.pdiparams``), the copy of the C++ operator's library the program
calls (``export/mlx_involution_<framework>.so``) and ``export/preprocess.json`` (class names,
input size, normalisation). Run by ``runtime.py``; no model-building or training code is imported.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from mlx_core import ImageBytes, Predictor, Request, Response, RunContext, RunError

# an 8x8 black PNG: the example in /docs
EXAMPLE_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEklEQVR4nGNgGAWjYBSMAggAAAQIAAGcHkOaAAAAAElFTkSuQmCC"
#: export format -> the most images one call takes (torch.export's batch Dim has max=1024)
MAX_BATCH = {"torch.export": 1024, "paddle-inference": None}


class ClassifyRequest(Request):
    image: ImageBytes = Field(description="a JPEG or PNG image (base64 in JSON, a file in a form)")


class Scored(BaseModel):
    name: str = Field(description="the class's readable name (cat_to_name.json, else its folder name)")
    label: str = Field(description="the class's folder name in the training data")
    probability: float = Field(description="softmax probability, rounded to 4 digits")


class ClassifyResponse(Response):
    name: str = Field(description="the most probable class")
    top_k: list[Scored] = Field(description="the predict.top_k most probable classes, best first")
    format: str = Field(description="the exported format that answered (torch.export or paddle-inference)")


def read_preprocess(ctx: RunContext) -> dict[str, Any]:
    """``export/preprocess.json`` of the run, checked against run.json; a run exported before it
    existed is one line saying to export again."""
    path = ctx.run_dir / "export" / "preprocess.json"
    if not path.is_file():
        raise RunError(
            f"{ctx.run_dir} has no export/preprocess.json (class names and preprocessing for serving): it was "
            "exported by an older mlx-custom-ops; export it again (`mlx run custom_ops export`)"
        )
    return json.loads(ctx.verify_artifact(path).read_text())


def image_array(image: Any, pre: dict[str, Any]) -> np.ndarray:
    """The model input float32 [3, S, S] of one decoded RGB ``PIL.Image``: the training reader's
    bilinear resize to S x S (``data.read_image``) and normalisation (``Split.normalized``), with
    the values the export recorded."""
    from PIL import Image

    s = int(pre["image_size"])
    x = np.asarray(image.resize((s, s), Image.BILINEAR), dtype=np.uint8).astype(np.float32) / float(pre["scale"])
    x = (x - np.asarray(pre["mean"], dtype=np.float32)) / np.asarray(pre["std"], dtype=np.float32)
    return x.transpose(2, 0, 1).copy()


def _runner(ctx: RunContext, pre: dict[str, Any]):
    from . import runtime

    lib = ctx.verify_artifact(pre["op_library"]) if pre.get("op_library") else None
    if pre["format"] == "torch.export":
        return runtime.torch_runner(ctx.verify_artifact(pre["model"]), lib, device=ctx.device)
    prefix = ctx.run_dir / pre["model"]
    ctx.verify_artifact(runtime.paddle_model_file(prefix))
    ctx.verify_artifact(str(prefix) + ".pdiparams")
    return runtime.paddle_runner(prefix, lib)


def serve(ctx: RunContext, format: str | None = None) -> Predictor:
    pre = read_preprocess(ctx)
    fmt = pre["format"]
    if format not in (None, fmt):
        raise RunError(f"this custom_ops run exported the format {fmt!r} (model.backend); there is no {format!r}")
    from mlx_core.serving import decode_image

    run = _runner(ctx, pre)
    k = min(ctx.config.predict.top_k, len(pre["classes"]))

    def prepare(req: ClassifyRequest) -> np.ndarray:
        return image_array(decode_image(req.image, "the uploaded image"), pre)

    def predict(items: list[np.ndarray]) -> list[ClassifyResponse]:
        logits = run(np.stack(items)).astype(np.float64)
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        out = []
        for p in probs:
            best = np.argsort(-p, kind="stable")[:k]
            top = [Scored(name=pre["names"][i], label=pre["classes"][i], probability=round(float(p[i]), 4))
                   for i in best]  # fmt: skip
            out.append(ClassifyResponse(name=top[0].name, top_k=top, format=fmt))
        return out

    return Predictor(
        request=ClassifyRequest,
        response=ClassifyResponse,
        prepare=prepare,
        predict=predict,
        batches=True,  # both exports take a dynamic batch dimension
        max_batch=MAX_BATCH.get(fmt),
        title=f"RedNet image classification ({fmt}, involution as a C++ custom operator): pick an image",
        examples=[{"image": EXAMPLE_PNG}],
        facts={
            "format": fmt,
            "runtime": "torch.export" if fmt == "torch.export" else "paddle.inference",
            "classes": list(pre["names"]),
            "image_size": int(pre["image_size"]),
            "top_k": k,
            "custom_op_library": pre.get("op_library"),
        },  # fmt: skip
    )
