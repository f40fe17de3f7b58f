"""Predict: classify images with an exported run through the predictor ``mlx serve`` serves
(``serve.py``: the exported model, its operator library and ``export/preprocess.json``, each
checked against run.json); no training or model-building code is imported.

    mlx predict custom_ops RUN_DIR image.jpg [image2.png ...]

The images run in batches of up to the export's batch limit; one row per (image, rank).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlx_core import DataError


def _read(path: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"image {path} does not exist (or is not a file); expected a JPEG or PNG file")
    return p.read_bytes()


def predict(ctx: Any, inputs: list[str]) -> list[dict[str, Any]]:
    from mlx_core.serving import b64, decode_image

    from .serve import ClassifyRequest, serve

    blobs = [_read(p) for p in inputs]
    for path, blob in zip(inputs, blobs, strict=True):  # every file checked before the model is loaded
        decode_image(blob, f"image {path}")
    predictor = serve(ctx)
    step = predictor.max_batch or len(blobs)
    results = []
    for i in range(0, len(blobs), step):
        results += predictor.run([ClassifyRequest(image=b64(b)) for b in blobs[i : i + step]])
    rows = []
    for path, res in zip(inputs, results, strict=True):
        for rank, s in enumerate(res.top_k, start=1):
            rows.append({"image": path, "rank": rank, "name": s.name, "label": s.label,
                         "probability": s.probability, "format": res.format})  # fmt: skip
    if ctx.output_dir is not None:
        from mlx_core import atomic_write_json

        atomic_write_json(ctx.output_dir / "predictions.json", rows)
    return rows
