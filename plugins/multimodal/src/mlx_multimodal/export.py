"""Export stage: a ``torch.export`` program of the classifier (dynamic batch) with the tokenizer,
answer vocabulary and preprocessing saved beside it; the reloaded program is checked against eager."""

from __future__ import annotations

import json
import shutil
from typing import Any

import torch

from mlx_core import StageFailed, atomic_dir

from .data import to_float
from .predict import Predictor


def export(ctx: Any, data: Any, model: Any) -> dict[str, Any]:
    model = model.to("cpu").eval()
    # the traced example needs a batch of at least 2: torch.export specialises a dimension of size 1
    idx = torch.arange(max(2, min(8, len(data.val)))) % len(data.val)
    images = to_float(data.val.images[idx])
    ids = data.val.input_ids[idx]
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        program = torch.export.export(model, (images, ids), dynamic_shapes={"image": {0: batch}, "text": {0: batch}})
    folder = ctx.path("export")
    with ctx.atomic_path("export", "model.pt2") as tmp, open(tmp, "wb") as fh:
        torch.export.save(program, fh)  # a file object: torch.export.save wants a name ending in .pt2
    with ctx.atomic_path("export", "answers.txt") as tmp:
        tmp.write_text("".join(f"{a}\n" for a in data.answers))
    with ctx.atomic_path("export", "preprocess.json") as tmp:
        tmp.write_text(json.dumps(data.preprocess, indent=2))
    with atomic_dir(folder / "tokenizer") as tmp:
        shutil.copytree(data.tokenizer_dir, tmp, dirs_exist_ok=True)

    # parity: the reloaded program (through the same reader predict uses) against eager
    pred = Predictor(folder)
    with torch.no_grad():
        eager = model(images, ids)
    got = pred.logits(pred.normalize(data.val.images[idx]), ids)
    diff = float((got - eager).abs().max())
    agree = float((got.argmax(-1) == eager.argmax(-1)).float().mean())
    one = pred.logits(pred.normalize(data.val.images[:1]), ids[:1])  # a batch size other than the traced one
    diff = max(diff, float((one - eager[:1]).abs().max()))
    ctx.add_artifact(folder / "model.pt2", kind="model", format="torch.export", max_abs_diff=diff, top1_agreement=agree)
    ctx.add_artifact(folder / "answers.txt", kind="vocabulary")
    ctx.add_artifact(folder / "preprocess.json", kind="preprocessing")
    ctx.add_artifact(folder / "tokenizer" / "vocab.txt", kind="tokenizer")
    ctx.log_metrics({"export_max_abs_diff": diff, "export_top1_agreement": agree})
    if diff > ctx.config.export.atol or agree < 1.0:
        raise StageFailed(
            f"reloaded torch.export program differs from eager: max |logit diff| {diff:.3g} > "
            f"export.atol={ctx.config.export.atol} or top-1 agreement {agree:.2f} < 1"
        )
    return {"torch.export": str(folder / "model.pt2"), "max_abs_diff": diff}
