"""A tiny domain plugin used only by the quant tests: per-pixel colour classes, a conv + Linear
segmentation net, a few training steps, and an fp32 export (torch state dict). It follows the
conventions quant relies on: ``data.train`` / ``data.val`` datasets of ``(x, mask)`` numpy pairs,
a model returning ``{"out": logits}``, and ``checkpoints/*.pt`` holding ``{"model": state_dict}``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field

from mlx_core import PluginInfo, Section, hookimpl

NAME = "tinyseg"
CLASSES = 3


class TinyData(Section):
    n: int = Field(24, ge=4, description="generated images")
    size: int = Field(16, ge=8, description="image side")


class TinyTrain(Section):
    steps: int = Field(30, ge=0, description="Adam steps")


class TinyConfig(Section):
    seed: int = Field(0, description="seed")
    data: TinyData = Field(default_factory=TinyData)
    train: TinyTrain = Field(default_factory=TinyTrain)
    # recsys's shape: the model stage hands a dict and train builds (and returns) its own model
    dict_model: bool = Field(False, description="model and train stages hand dicts, not the net")


@hookimpl
def mlx_plugin():
    return PluginInfo(name=NAME, summary="tiny segmentation (quant tests)", config=TinyConfig, profiler="none")


class Pairs:
    def __init__(self, xs, ys):
        self.xs, self.ys = xs, ys

    def __len__(self):
        return len(self.xs)

    def __getitem__(self, i):
        return self.xs[i], self.ys[i]


@dataclass
class TinyDataset:
    train: Pairs
    val: Pairs


def make(n: int, size: int, seed: int):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(n):
        y = np.zeros((size, size), dtype=np.int64)
        for c in (1, 2):
            r0, c0 = rng.integers(0, size // 2, 2)
            y[r0 : r0 + size // 2, c0 : c0 + size // 2] = c
        x = np.stack([(y == c).astype(np.float32) for c in range(CLASSES)]) + rng.normal(0, 0.3, (CLASSES, size, size))
        xs.append(x.astype(np.float32))
        ys.append(y)
    return xs, ys


@hookimpl
def mlx_data(ctx):
    if ctx.plugin != NAME:
        return None
    xs, ys = make(ctx.config.data.n, ctx.config.data.size, ctx.seed)
    k = len(xs) * 3 // 4
    return TinyDataset(Pairs(xs[:k], ys[:k]), Pairs(xs[k:], ys[k:]))


@hookimpl
def mlx_examples(ctx, data, n, split):
    """The cross-plugin data contract, as an old-style hook function (guard included): quant
    calibrates on the training pairs and scores on the held-out ones."""
    if ctx.plugin != NAME:
        return None
    import torch

    pairs = data.train if split == "calibration" else data.val
    return [
        ((torch.from_numpy(x)[None],), torch.from_numpy(y)[None])
        for x, y in (pairs[i] for i in range(min(n, len(pairs))))
    ]


def build(seed: int):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(CLASSES, 16, 3, padding=1)
            self.mix = nn.Linear(16, 32)
            self.head = nn.Linear(32, CLASSES)

        def forward(self, x):
            h = torch.relu(self.stem(x)).permute(0, 2, 3, 1)
            h = self.head(torch.relu(self.mix(h)))
            return {"out": h.permute(0, 3, 1, 2)}

    torch.manual_seed(seed)
    return Net()


@hookimpl
def mlx_model(ctx, data):
    if ctx.plugin != NAME:
        return None
    ctx.record("trained", False)
    if ctx.config.dict_model:
        return {"seed": ctx.seed}
    return build(ctx.seed)


@hookimpl
def mlx_train(ctx, data, model):
    if ctx.plugin != NAME:
        return None
    import torch

    as_dict = isinstance(model, dict)
    if as_dict:
        model = build(model["seed"])
    x = torch.from_numpy(np.stack(data.train.xs))
    y = torch.from_numpy(np.stack(data.train.ys))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(ctx.config.train.steps):
        loss = torch.nn.functional.cross_entropy(model(x)["out"], y)
        loss.backward()
        opt.step()
        opt.zero_grad()
    with ctx.atomic_path("checkpoints", "epoch-001.pt") as tmp:
        torch.save({"model": model.state_dict(), "epoch": 1}, tmp)
    ctx.record("trained", ctx.config.train.steps > 0)
    return {"checkpoint": str(ctx.path("checkpoints", "epoch-001.pt"))} if as_dict else model


@hookimpl
def mlx_export(ctx, data, model):
    if ctx.plugin != NAME:
        return None
    import torch

    state = torch.load(model["checkpoint"])["model"] if isinstance(model, dict) else model.state_dict()
    with ctx.atomic_path("export", "model.pt") as tmp:
        torch.save(state, tmp)
    ctx.add_artifact(ctx.path("export", "model.pt"), kind="model", format="torch")
    return {"torch": str(ctx.path("export", "model.pt"))}
