"""The stage functions of the ``tabled`` test plugin (imported only when a run reaches a stage)."""

from __future__ import annotations

import json
import random

from mlx_core import DataError


def data(ctx):
    rng = random.Random(ctx.seed)
    values = [rng.uniform(0, 10) for _ in range(ctx.config.n)]
    return {"train": values[: len(values) // 2], "val": values[len(values) // 2 :]}


def model(data):  # takes fewer arguments than the hook offers, like a pluggy hookimpl may
    return {"mean": 0.0}


def train(ctx, data, model):
    values = data["train"]
    for epoch in range(1, ctx.config.train.epochs + 1):
        model = {"mean": model["mean"] + (sum(values) / len(values) - model["mean"]) * 0.5}
        ctx.log_metrics({"abs_error": abs(model["mean"] - sum(values) / len(values))}, step=epoch)
    ctx.record("trained", True)
    return model


def export(ctx, model):
    with ctx.atomic_path("export", "mean.json") as tmp:
        tmp.write_text(json.dumps(model))
    ctx.add_artifact(ctx.path("export", "mean.json"), kind="model", format="json")
    return {"json": str(ctx.path("export", "mean.json"))}


def predict(ctx, inputs):
    path = ctx.run_dir / "export" / "mean.json"
    if not path.is_file():
        raise DataError(f"{ctx.run_dir} has no export/mean.json; run the export stage first")
    mean = json.loads(path.read_text())["mean"]
    return [{"input": text, "mean": mean} for text in inputs]


class Batch(tuple):
    """A stand-in for a tensor: what the contract checks is a batch dimension (``shape``)."""

    @property
    def shape(self) -> tuple[int]:
        return (len(self),)


def examples(data, n, split):
    values = data["train"] if split == "calibration" else data["val"]
    return [((Batch([v]),), None) for v in values[:n]]
