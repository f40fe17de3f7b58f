"""Checkpoints: Ignite's ``Checkpoint`` handler writing through an atomic saver into the run's
``checkpoints/`` folder, plus the small stateful objects it saves beside model and optimizer
(the history of epoch rows, the global step, the RNG states)."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.handlers.checkpoint import BaseSaveHandler

from mlx_core import DataError, RunContext

#: checkpoints are ``checkpoints/epoch-NNN.pt`` (Checkpoint's filename_pattern)
PATTERN = "epoch-{global_step:03d}.{ext}"
NAME = re.compile(r"epoch-(\d+)\.pt$")


class RunDirSaver(BaseSaveHandler):
    """Ignite's save handler for the run directory: each file written with ``ctx.atomic_path``
    (temporary file, fsync, rename), so a kill never leaves a half-written checkpoint. Only the
    main rank writes (Checkpoint calls every rank's handler)."""

    def __init__(self, ctx: RunContext, folder: str = "checkpoints", is_main: bool = True) -> None:
        self.ctx, self.folder, self.is_main = ctx, folder, is_main

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        if not self.is_main:
            return
        with self.ctx.atomic_path(self.folder, filename) as tmp:
            torch.save(dict(checkpoint), tmp)

    def remove(self, filename: str) -> None:
        if self.is_main:
            self.ctx.path(self.folder, filename).unlink(missing_ok=True)


def found(folder: Path) -> list[tuple[int, Path]]:
    """The epoch checkpoints in ``folder``, oldest first."""
    hits = [(int(m.group(1)), p) for p in folder.glob("epoch-*.pt") if (m := NAME.search(p.name))]
    return sorted(hits)


def load(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling fails in many ways (pickle, zip, RuntimeError); all mean "not a checkpoint"
        raise DataError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})".splitlines()[0]) from None


class History:
    """The epoch rows (epoch 0 = before training) kept in each checkpoint, so a resumed run has the
    whole curve and can log the rows a kill left unlogged."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def state_dict(self) -> list[dict[str, Any]]:
        return list(self.rows)

    def load_state_dict(self, rows: list[dict[str, Any]]) -> None:
        self.rows = list(rows)


class Trainable:
    """The parameters of ``model`` that train (``requires_grad``), by name: what a checkpoint holds
    under ``fit(..., trainable_only=True)`` in place of the whole state_dict. For adapters on a
    frozen base that an earlier stage rebuilds on every run (quant's LoRA on a bitsandbytes model):
    the frozen int8/4-bit weights are neither written each epoch nor loaded back."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def _params(self) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in self._params().items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        params = self._params()
        missing, unexpected = sorted(set(params) - set(state)), sorted(set(state) - set(params))
        if missing or unexpected:
            raise ValueError(f"its trainable parameters differ: missing {missing[:2]}, unexpected {unexpected[:2]}")
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(state[name])


class Step:
    """The global optimizer-step count, saved as a plain int (``checkpoint["step"]``)."""

    def __init__(self) -> None:
        self.value = 0

    def state_dict(self) -> int:
        return self.value

    def load_state_dict(self, value: int) -> None:
        self.value = int(value)


class RngStates:
    """torch (CPU and CUDA), numpy and Python RNG states: what a resumed run needs to draw the same
    dropout masks and random numbers as the uninterrupted run."""

    def state_dict(self) -> dict[str, Any]:
        np_state = np.random.get_state()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
            "python": _tuples_to_lists(random.getstate()),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), gauss))
        random.setstate(_lists_to_tuples(state["python"]))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def _tuples_to_lists(value: Any) -> Any:
    return [_tuples_to_lists(v) for v in value] if isinstance(value, tuple | list) else value


def _lists_to_tuples(value: Any) -> Any:
    return tuple(_lists_to_tuples(v) for v in value) if isinstance(value, list) else value
