"""A toy classification task on the engine: a tiny MLP (with dropout, so RNG state matters) on
random vectors, trained through ``mlx_torch.fit`` in a real RunContext. ``python -m
torch.distributed.run --nproc-per-node 2 tests/torch/toy.py RUN_DIR OUT`` runs it on two
processes (gloo); each rank saves its final weights to ``OUT/rank-K.pt``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from mlx_core import Section
from mlx_core.testing import stage_context
from mlx_torch.config import EngineTrainConfig


class ToyConfig(Section):
    seed: int = 0
    train: EngineTrainConfig = Field(default_factory=EngineTrainConfig)


def dataset(n: int, seed: int = 1) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()  # 3 classes a small MLP can learn
    return torch.utils.data.TensorDataset(x, y)


def model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))


def metrics(device: torch.device) -> dict[str, Any]:
    from ignite.metrics import Accuracy, Loss

    return {"accuracy": Accuracy(device=device), "loss": Loss(F.cross_entropy, device=device)}


def toy_fit(run_dir: Path, epochs: int = 3, resumed: bool = False, handlers=(), batch_size: int = 8,
            trainable_only: bool = False, **train: Any):  # fmt: skip
    """``trainable_only``: the first layer is frozen (as a quantized base under adapters) and the
    checkpoints hold only the rest."""
    from mlx_torch.fit import fit

    cfg = ToyConfig(train=EngineTrainConfig(**train))
    ctx = stage_context(run_dir, plugin="toy", config=cfg, stage="train", resumed=resumed)
    net = model()
    if trainable_only:
        net[0].requires_grad_(False)
    result = fit(
        ctx, net, dataset(64), dataset(32, seed=2), cfg=cfg.train, epochs=epochs, batch_size=batch_size,
        optimizer=lambda p: torch.optim.AdamW(p, lr=1e-2),
        loss_fn=lambda net, b: F.cross_entropy(net(b[0]), b[1]),
        eval_fn=lambda net, b: (net(b[0]), b[1]), metrics=metrics,
        summarize=lambda v: {"loss": float(v["loss"]), "accuracy": float(v["accuracy"])},
        handlers=handlers, trainable_only=trainable_only,
    )  # fmt: skip
    return ctx, result


if __name__ == "__main__":  # one rank of a torchrun job
    import os

    run_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    rank = int(os.environ["RANK"])
    # each rank its own manifest (the core's launcher gives rank 0 the run's); checkpoints are the
    # engine's business: only rank 0 may write any
    _, result = toy_fit(run_dir if rank == 0 else run_dir / f"rank-{rank}", epochs=2)
    torch.save({k: v.detach().clone() for k, v in result.model.state_dict().items()},
               out / f"rank-{os.environ['RANK']}.pt")  # fmt: skip
    print("world", result.world_size, "backend", result.backend)
