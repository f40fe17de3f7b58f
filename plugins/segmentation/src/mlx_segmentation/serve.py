"""The segmentation predictor: what ``mlx serve`` serves and ``mlx predict`` runs (stage table ``serve``).

An image in, the class mask (a VOC-palette PNG) and the overlay out, from the exported artifact
loaded by its own runtime (ExecuTorch, TorchScript or onnxruntime), never the training code.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from PIL import Image
from pydantic import Field

from mlx_core import ImageBytes, Predictor, Request, Response, RunContext, RunError
from mlx_core.serving import b64, decode_image, png_bytes

from .data import class_names, eval_transform
from .predict import mask_image, overlay, summary
from .runtimes import RUNTIME, SUFFIX, artifact_name, load

#: formats whose exported program takes any batch size (a traced graph); ONNX and ExecuTorch
#: were exported with the fixed 1x3xHxW sample shape and run one image per call
BATCHED = ("torchscript",)
# an 8x8 black PNG: the example in /docs
EXAMPLE_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEklEQVR4nGNgGAWjYBSMAggAAAQIAAGcHkOaAAAAAElFTkSuQmCC"


class SegmentRequest(Request):
    image: ImageBytes = Field(description="a JPEG or PNG photo (base64 in JSON, a file in a form)")


class SegmentResponse(Response):
    size: str = Field(description="the image's width x height")
    classes: str = Field(description="the classes found, with the share of the image each covers")
    mask: ImageBytes = Field(description="class ids as a VOC-palette PNG at the image's size")
    overlay: ImageBytes = Field(description="the image with each class tinted in its VOC colour (PNG)")
    format: str = Field(description="the exported format that computed it")


def serve(ctx: RunContext, format: str | None = None) -> Predictor:
    cfg = ctx.config
    fmt = format or cfg.predict.format
    if fmt not in SUFFIX:
        raise RunError(f"segmentation exports {', '.join(SUFFIX)}; there is no format {fmt!r}")
    path = ctx.run_dir / "export" / artifact_name(fmt)
    if not path.is_file():
        raise RunError(
            f"run {ctx.run_dir} has no {fmt} export ({path} is missing); run `mlx run segmentation export --from {ctx.run_dir} "
            f"--set 'export.formats=[\"{fmt}\"]'` or choose another predict.format"
        )
    with warnings.catch_warnings():  # torch.jit.load's deprecation notice, on every start
        warnings.simplefilter("ignore", FutureWarning)
        runner = load(fmt, ctx.verify_artifact(path))
    names = class_names(cfg.model.num_classes)
    size, alpha, batches = cfg.data.image_size, cfg.predict.alpha, fmt in BATCHED

    def prepare(req: SegmentRequest) -> tuple[Any, np.ndarray]:
        image = decode_image(req.image, "the uploaded image")
        x, _ = eval_transform(image, None, size)
        return image, x

    def predict(items: list[tuple[Any, np.ndarray]]) -> list[SegmentResponse]:
        xs = np.stack([x for _, x in items])
        logits = runner(xs) if batches else np.concatenate([runner(x[None]) for x in xs])
        out = []
        for (image, _), lg in zip(items, logits, strict=True):
            small = lg.argmax(0).astype(np.uint8)
            mask = np.asarray(Image.fromarray(small).resize(image.size, Image.NEAREST))
            out.append(
                SegmentResponse(
                    size=f"{image.width}x{image.height}",
                    classes=summary(mask, names),
                    mask=b64(png_bytes(mask_image(mask))),
                    overlay=b64(png_bytes(overlay(image, mask, alpha))),
                    format=fmt,
                )
            )
        return out

    return Predictor(
        request=SegmentRequest,
        response=SegmentResponse,
        prepare=prepare,
        predict=predict,
        batches=batches,
        title=f"semantic segmentation ({cfg.model.arch}, {fmt}): upload a photo, get its mask and overlay",
        examples=[{"image": EXAMPLE_PNG}],
        facts={"format": fmt, "runtime": RUNTIME[fmt], "classes": names, "image_size": size},
    )
