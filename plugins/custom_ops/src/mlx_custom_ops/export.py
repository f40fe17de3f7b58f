"""Export stage: a Paddle inference model (``paddle.jit.save``) run through ``paddle.inference`` in
a fresh process with the custom operator loaded, or a ``torch.export`` program; both checked
against the eager model's logits on validation images.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from mlx_core import StageFailed

# Runs in a fresh interpreter: the runtime `mlx serve` uses (``runtime.paddle_runner``: Paddle
# Inference, the custom operator's library registered first) on the inputs; writes the logits.
PADDLE_RUNNER = r"""
import json, sys
import numpy as np
args = json.loads(sys.argv[1])
from mlx_custom_ops.runtime import paddle_runner
out = paddle_runner(args["prefix"], args["op_library"])(np.load(args["inputs"]))
with open(args["outputs"], "wb") as fh:  # a temp name: np.save(path) would add ".npy"
    np.save(fh, out)
"""
#: what serving needs beside the model, written by the export stage (``export/preprocess.json``)
PREPROCESS = "preprocess.json"


def run(ctx, data, model):
    cfg = ctx.config
    n = min(cfg.export.batch, len(data.valid))
    x = data.valid.normalized(slice(0, n))
    if cfg.model.backend == "paddle":
        result = _paddle(ctx, model, x)
    else:
        result = _torch(ctx, model, x)
    result["serve"] = _preprocess(ctx, data, result)
    diff = result["max_abs_diff"]
    ctx.log_metrics({"export_max_abs_diff": diff})
    ctx.record("export", result)
    if not diff <= cfg.export.atol:
        raise StageFailed(f"exported model differs from eager by {diff:.3g} (export.atol={cfg.export.atol})")
    return result


def _paddle(ctx, net, x: np.ndarray) -> dict:
    import paddle
    from paddle.static import InputSpec

    from .build import LAST_BUILD, ensure_paddle_op

    size = x.shape[-1]
    net.eval()
    with paddle.no_grad():
        eager = net(paddle.to_tensor(x)).numpy()
    custom = ctx.config.model.impl == "custom"
    if custom:
        ensure_paddle_op()
    out_dir = ctx.path("export")
    static = paddle.jit.to_static(
        net, input_spec=[InputSpec([None, 3, size, size], "float32", "image")], full_graph=True
    )
    # the whole inference model (model.json + model.pdiparams) replaces the old one at once
    with ctx.atomic_dir("export") as tmp_dir:
        paddle.jit.save(static, str(tmp_dir / "model"))
    prefix = out_dir / "model"
    in_program = _check_program(prefix, net, custom)
    # the fresh process (and `mlx serve`) load the copy of the operator's library kept in export/
    op_library = _copy_op_library(ctx, LAST_BUILD["paddle"]["path"], "paddle") if custom else None
    with ctx.atomic_path("export", "parity_inputs.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, x)
    with ctx.atomic_path("export", "parity_outputs.npy") as outputs:
        args = {"prefix": str(prefix), "op_library": op_library and str(ctx.run_dir / op_library),
                "inputs": str(out_dir / "parity_inputs.npy"), "outputs": str(outputs)}  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-c", PADDLE_RUNNER, json.dumps(args)], capture_output=True, text=True, timeout=600
        )
        if proc.returncode != 0:
            tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-1:] or ["(no output)"]
            raise StageFailed(
                f"the exported Paddle model did not run in a fresh process through paddle.inference: {tail[0]}"
            )
    got = np.load(out_dir / "parity_outputs.npy")
    diff = float(np.abs(got - eager).max())
    for f in sorted(out_dir.iterdir()):
        if f.name.startswith("model."):
            ctx.add_artifact(f, kind="paddle-inference-model")
    if op_library:
        ctx.note(
            f"the inference model uses the custom operator 'involution': load {op_library} before creating the "
            "predictor (mlx serve does)"
        )
    return {"format": "paddle-inference", "prefix": str(prefix.relative_to(ctx.run_dir)), "custom_op": in_program > 0,
            "program_involution_ops": in_program,
            "op_library": op_library, "fresh_process": True, "max_abs_diff": diff, "images": len(x)}  # fmt: skip


def _check_program(prefix: Path, net, custom: bool) -> int:
    """How many ``involution`` custom operators the saved program holds (read from the file, see
    ``program_ops.py``): one per Involution layer with ``impl=custom``, none otherwise."""
    from .paddle_ops import Involution
    from .program_ops import program_ops

    n = program_ops(prefix).get("involution", 0)
    layers = sum(isinstance(layer, Involution) for layer in net.sublayers())
    if n != (layers if custom else 0):
        raise StageFailed(f"the saved program {prefix}.json holds {n} 'involution' custom op(s), expected "
                          f"{layers if custom else 0} (model.impl={'custom' if custom else 'composite'})")  # fmt: skip
    return n


def _torch(ctx, net, x: np.ndarray) -> dict:
    import torch

    net.eval()
    dev = next(net.parameters()).device
    xt = torch.from_numpy(x).to(dev)
    with torch.no_grad():
        eager = net(xt).cpu().numpy()
    batch = torch.export.Dim("batch", min=1, max=1024)
    prog = torch.export.export(net, (xt,), dynamic_shapes=({0: batch},))
    with ctx.atomic_path("export", "model.pt2") as tmp:
        torch.export.save(prog, tmp)
    path = ctx.path("export", "model.pt2")
    loaded = torch.export.load(path)
    with torch.no_grad():
        got = loaded.module()(xt).cpu().numpy()
    diff = float(np.abs(got - eager).max())
    ops = sorted(
        {str(n.target) for n in prog.graph.nodes if n.op == "call_function" and "mlx_custom_ops" in str(n.target)}
    )
    ctx.add_artifact(path, kind="torch-export", custom_ops=ops)
    op_library = None
    if ops:  # the program calls torch.ops.mlx_custom_ops.*: serving loads this copy of their library first
        from .build import LAST_BUILD

        op_library = _copy_op_library(ctx, LAST_BUILD["torch"]["path"], "torch")
    return {"format": "torch.export", "path": str(Path(path).relative_to(ctx.run_dir)),
            "custom_op": bool(ops), "graph_custom_ops": ops, "op_library": op_library, "max_abs_diff": diff,
            "images": len(x)}  # fmt: skip


def _copy_op_library(ctx, built: str, framework: str) -> str:
    """A copy of the operator's shared library (built in the per-user cache) in ``export/``,
    recorded as an artifact so that ``mlx serve`` loads only files whose sha256 the run recorded;
    returns its path in the run. Built with ``-march=native``: it runs on CPUs like this one."""
    import shutil

    name = f"mlx_involution_{framework}.so"
    with ctx.atomic_path("export", name) as tmp:
        shutil.copyfile(built, tmp)
    path = ctx.path("export", name)
    ctx.add_artifact(path, kind="op-library", framework=framework, built_from=built)
    return str(path.relative_to(ctx.run_dir))


def _preprocess(ctx, data, result: dict) -> dict:
    """``export/preprocess.json``: what serving needs beside the model (class names, input size,
    resize, normalisation, the files to load), recorded as an artifact; returns the facts for
    ``records.export.serve``."""
    from .data import MEAN, STD

    model = result.get("path") or result["prefix"]
    pre = {"format": result["format"], "model": model, "op_library": result.get("op_library"),
           "classes": list(data.classes), "names": list(data.names), "image_size": int(data.image_size),
           "resize": "bilinear", "scale": 255.0, "mean": MEAN.tolist(), "std": STD.tolist(),
           "input": "float32 [N, 3, image_size, image_size], RGB, (pixel / scale - mean) / std",
           "batch": "dynamic"}  # fmt: skip
    with ctx.atomic_path("export", PREPROCESS) as tmp:
        tmp.write_text(json.dumps(pre, indent=2))
    path = ctx.path("export", PREPROCESS)
    ctx.add_artifact(path, kind="preprocess", classes=len(data.classes), image_size=int(data.image_size))
    return {"preprocess": str(path.relative_to(ctx.run_dir)), "classes": list(data.names),
            "image_size": int(data.image_size), "mean": pre["mean"], "std": pre["std"]}  # fmt: skip
