"""A complete, tiny domain plugin: least-squares line fitting in pure Python.

data: y = a*x + b + noise written as CSV; model: (w, b) = 0; train: gradient descent with
MSE on a held-out split; export: JSON weights; predict: y for each x given.
"""

from __future__ import annotations

import csv
import json
import random
import time
from typing import Literal

from pydantic import Field

from mlx_core import DataError, PluginInfo, Section, StageFailed, atomic_write_json, hookimpl

NAME = "linreg"


class DataConfig(Section):
    n: int = Field(200, ge=4, description="number of generated points")
    slope: float = Field(3.0, description="true slope of the generated line")
    intercept: float = Field(-1.0, description="true intercept")
    noise: float = Field(0.1, ge=0, description="std of the Gaussian noise")
    path: str | None = Field(None, description="a CSV file with x,y columns instead of generated data")


class TrainConfig(Section):
    epochs: int = Field(200, ge=1, le=100_000, description="full-batch gradient steps")
    lr: float = Field(0.1, gt=0, description="learning rate")
    step_delay: float = Field(0.0, ge=0, le=5, description="seconds to sleep per step (interrupt tests)")


class ExportConfig(Section):
    format: Literal["json"] = Field("json", description="export format")
    fail_parity: bool = Field(False, description="test switch: make the export check fail")


class LinregConfig(Section):
    seed: int = Field(0, description="random seed for data generation")
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)


@hookimpl
def mlx_plugin():
    return PluginInfo(
        name=NAME, summary="least-squares line fit (core test plugin)", config=LinregConfig, profiler="none"
    )


def _read(path):
    rows = []
    try:
        with open(path, newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    rows.append((float(row["x"]), float(row["y"])))
                except (KeyError, TypeError, ValueError):
                    raise DataError(f"{path}:{i}: expected numeric columns x,y, got {row}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    if len(rows) < 4:
        raise DataError(f"{path}: needs at least 4 rows, found {len(rows)}")
    return rows


@hookimpl
def mlx_data(ctx):
    if ctx.plugin != NAME:
        return None
    cfg = ctx.config.data
    path = ctx.path("data", "points.csv")
    if cfg.path:
        rows = _read(cfg.path)
    elif ctx.resumed and path.exists():
        rows = _read(path)
    else:
        rng = random.Random(ctx.seed)
        rows = [
            (x, cfg.slope * x + cfg.intercept + rng.gauss(0, cfg.noise))
            for x in (rng.uniform(-1, 1) for _ in range(cfg.n))
        ]
        with ctx.atomic_path("data", "points.csv") as tmp, open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["x", "y"])
            w.writerows(rows)
        ctx.add_artifact(path, kind="dataset")
    split = int(len(rows) * 0.8)
    return {"train": rows[:split], "val": rows[split:]}


def _mse(model, rows):
    return sum((model["w"] * x + model["b"] - y) ** 2 for x, y in rows) / len(rows)


@hookimpl
def mlx_model(ctx, data):
    if ctx.plugin != NAME:
        return None
    ctx.record("trained", False)
    return {"w": 0.0, "b": 0.0}


@hookimpl
def mlx_train(ctx, data, model):
    if ctx.plugin != NAME:
        return None
    rows, cfg = data["train"], ctx.config.train
    n = len(rows)
    ckpt = ctx.path("checkpoints", "last.json")
    start = 0
    if ctx.resumed and ckpt.exists():
        state = json.loads(ckpt.read_text())
        model, start = state["model"], state["step"]
        ctx.log(f"resuming from step {start}")
    try:
        with ctx.progress("gradient descent", total=cfg.epochs) as advance:
            advance(start)
            for step in range(start, cfg.epochs):
                gw = sum(2 * (model["w"] * x + model["b"] - y) * x for x, y in rows) / n
                gb = sum(2 * (model["w"] * x + model["b"] - y) for x, y in rows) / n
                model = {"w": model["w"] - cfg.lr * gw, "b": model["b"] - cfg.lr * gb}
                atomic_write_json(ckpt, {"model": model, "step": step + 1})
                if (step + 1) % 10 == 0:  # a history row per 10 steps, each after its checkpoint
                    ctx.log_metrics({"train_mse": _mse(model, rows)}, step=step + 1)
                advance(1)
                if cfg.step_delay:
                    time.sleep(cfg.step_delay)
    except KeyboardInterrupt:
        ctx.note(f"training interrupted; the last checkpoint is {ckpt}")
        raise
    ctx.log_metrics({"val_mse": _mse(model, data["val"]), "w": model["w"], "b": model["b"]})
    ctx.record("trained", True)
    return model


@hookimpl
def mlx_export(ctx, data, model):
    if ctx.plugin != NAME:
        return None
    path = atomic_write_json(ctx.path("export", "model.json"), model)
    reloaded = json.loads(path.read_text())
    diff = abs(_mse(reloaded, data["val"]) - _mse(model, data["val"]))
    if ctx.config.export.fail_parity:
        diff = 1.0
    ctx.add_artifact(path, kind="model", format="json", max_abs_diff=diff)
    if diff > 1e-12:
        raise StageFailed(f"exported model differs from the trained one (mse diff {diff})")
    return {"json": str(path.relative_to(ctx.run_dir))}  # as real plugins report their artifacts


@hookimpl
def mlx_predict(ctx, inputs):
    if ctx.plugin != NAME:
        return None
    xs = []
    for text in inputs:
        try:
            xs.append(float(text))
        except ValueError:
            raise DataError(f"input {text!r} is not a number") from None
    predictor = mlx_serve(ctx, None)  # the predictor `mlx serve` serves: the two never disagree
    return [{"x": v.x, "y": v.y} for v in predictor.run([predictor.request(x=x) for x in xs])]


@hookimpl
def mlx_serve(ctx, format):
    """y = w*x + b for each request, from the exported JSON weights (checked against run.json)."""
    if ctx.plugin != NAME:
        return None
    from mlx_core.serving import Predictor, Request, Response

    class Point(Request):
        x: float = Field(description="where to evaluate the fitted line")
        label: str = Field("point", min_length=1, description="a name echoed back")

    class Value(Response):
        x: float
        y: float
        label: str

    model = json.loads(ctx.verify_artifact("export/model.json").read_text())

    def predict(items):
        return [Value(x=p.x, y=model["w"] * p.x + model["b"], label=p.label) for p in items]

    return Predictor(request=Point, response=Value, predict=predict, batches=True, title="y = w*x + b",
                     examples=[{"x": 2.0, "label": "two"}], facts={"format": format or "json"})  # fmt: skip


def line(slope: float = 1.0, intercept: float = 0.0):
    """A fixed line y = slope * x + intercept, as the dict the linreg stages use.

    slope: the line's slope. intercept: its value at x = 0.
    """
    return {"w": float(slope), "b": float(intercept)}


@hookimpl
def mlx_models():
    return {"linreg_line": line}
