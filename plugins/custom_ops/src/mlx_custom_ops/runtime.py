"""The exported model's own runtimes, shared by the export stage's fresh-process parity check and
by ``mlx serve`` / ``mlx predict``: Paddle Inference with the custom operator's library
registered, or the ``torch.export`` program with the torch operator's library loaded. Neither
imports the model or training code (only ``torch_library``, the operator's fake and autograd
registrations, which ``torch.export.load`` needs to rebuild the graph).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mlx_core import RunError

#: library files this process registered the operator from: {framework: (path, sha256)}
_REGISTERED: dict[str, tuple[str, str]] = {}


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _already_loaded(framework: str, path: Path) -> bool:
    """Whether this process already has the ``framework`` operator registered from a library with
    the same bytes as ``path`` (then loading ``path`` again is skipped: a second copy of the same
    namespace is refused by torch and ignored by Paddle). A different build is one ``RunError``."""
    from . import build

    seen = _REGISTERED.get(framework)
    if seen is None and framework in build._LOADED:  # built or loaded from the per-user cache in this process
        cached = build.LAST_BUILD[framework]["path"]
        seen = (cached, _sha256(cached))
    if seen is None:
        return False
    if seen[1] != _sha256(path):
        raise RunError(
            f"this process already loaded another build of the {framework} involution operator ({seen[0]}); "
            f"cannot also load {path}: serve the run from a fresh process"
        )
    return True


def load_torch_op(path: str | Path) -> None:
    """Register ``torch.ops.mlx_custom_ops.involution`` from the library file at ``path``."""
    import torch

    path = Path(path)
    if not _already_loaded("torch", path):
        torch.ops.load_library(str(path))
        _REGISTERED["torch"] = (str(path), _sha256(path))
    from . import torch_library

    torch_library.register_python_parts()


def torch_runner(program: str | Path, op_library: str | Path | None, device: str = "cpu") -> Callable:
    """``run(x float32 [N, 3, S, S]) -> logits [N, classes]`` from a saved ``torch.export`` program."""
    import torch

    if op_library is not None:
        load_torch_op(op_library)
    module = torch.export.load(str(program)).module().to(device)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x).to(device)).cpu().numpy()

    return run


def paddle_model_file(prefix: str | Path) -> str:
    """The program file of a ``paddle.jit.save`` prefix: ``.json`` (PIR) or a legacy ``.pdmodel``."""
    prefix = str(prefix)
    return prefix + (".json" if os.path.exists(prefix + ".json") else ".pdmodel")


def paddle_runner(prefix: str | Path, op_library: str | Path | None) -> Callable:
    """``run(x float32 [N, 3, S, S]) -> logits [N, classes]`` through a ``paddle.inference``
    predictor of the model saved at ``prefix`` (CPU), the custom operator registered first."""
    import paddle  # noqa: F401 - initialises the framework before the op library is registered

    if op_library is not None and not _already_loaded("paddle", Path(op_library)):
        from paddle.utils.cpp_extension.extension_utils import load_op_meta_info_and_register_op

        load_op_meta_info_and_register_op(str(op_library))
        _REGISTERED["paddle"] = (str(op_library), _sha256(op_library))
    from paddle import inference

    config = inference.Config(paddle_model_file(prefix), str(prefix) + ".pdiparams")
    config.disable_gpu()
    if op_library is not None:
        config.disable_mkldnn()  # the custom kernel reads plain NCHW memory; oneDNN hands over blocked layouts
    config.switch_ir_optim(False)
    predictor = inference.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    output = predictor.get_output_names()[0]

    def run(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        handle.reshape(list(x.shape))
        handle.copy_from_cpu(x)
        predictor.run()
        return predictor.get_output_handle(output).copy_to_cpu()

    return run
