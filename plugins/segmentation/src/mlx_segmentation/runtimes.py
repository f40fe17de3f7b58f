"""Each exported format loaded by its own runtime, behind one call: logits = run(x).

``x`` is a 1x3xHxW float32 numpy array (normalized), the result 1xCxHxW float32 logits.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

Runner = Callable[[np.ndarray], np.ndarray]
SUFFIX = {"executorch": ".pte", "torchscript": ".pt", "onnx": ".onnx"}
RUNTIME = {"executorch": "executorch.runtime (XNNPACK)", "torchscript": "torch.jit.load", "onnx": "onnxruntime (CPU)"}


def artifact_name(fmt: str) -> str:
    return f"model{SUFFIX[fmt]}"


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """ExecuTorch's C++ runtime logs CPU probing to fd 2 when it starts; keep the terminal clean."""
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)


def load(fmt: str, path: str | Path) -> Runner:
    path = str(path)
    if fmt == "torchscript":
        import torch

        module = torch.jit.load(path, map_location="cpu").eval()

        def run_ts(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return module(torch.from_numpy(x)).numpy()

        return run_ts
    if fmt == "onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run_onnx(x: np.ndarray) -> np.ndarray:
            return session.run(None, {name: x})[0]

        return run_onnx
    if fmt == "executorch":
        import torch
        from executorch.runtime import Runtime

        with quiet_stderr():
            method = Runtime.get().load_program(path).load_method("forward")

        def run_et(x: np.ndarray) -> np.ndarray:
            with quiet_stderr():
                out = method.execute([torch.from_numpy(x)])
            return out[0].numpy()

        return run_et
    raise ValueError(f"unknown format {fmt!r}")
