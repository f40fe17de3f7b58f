"""Export to ExecuTorch (XNNPACK), TorchScript and ONNX; each reloaded by its own runtime and
checked against eager PyTorch on a sample image (max |logit diff|, argmax-mask agreement)."""

from __future__ import annotations

import copy
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mlx_core import RunContext, StageFailed, atomic_write_json

from .data import MEAN, STD, SegData, load_image
from .model import LogitsOnly
from .padding_taps import rewrite as rewrite_padding_taps
from .predict import mask_image, overlay, segment
from .runtimes import RUNTIME, artifact_name, load


def export_torchscript(net: nn.Module, x: torch.Tensor, path: Path) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, x)
    traced.save(str(path))


def export_onnx(net: nn.Module, x: torch.Tensor, path: Path, opset: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (x,), str(path), dynamo=True, external_data=False, opset_version=opset,
            input_names=["input"], output_names=["logits"], verbose=False,
        )  # fmt: skip


def export_executorch(net: nn.Module, x: torch.Tensor, path: Path) -> None:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(net, (x,))
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
    with open(path, "wb") as fh:
        fh.write(lowered.buffer)


EXPORTERS = {
    "executorch": lambda net, x, path, cfg: export_executorch(net, x, path),
    "torchscript": lambda net, x, path, cfg: export_torchscript(net, x, path),
    "onnx": lambda net, x, path, cfg: export_onnx(net, x, path, cfg.opset),
}


def parity(reference: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """Max |logit difference| and the fraction of pixels whose argmax class agrees."""
    if output.shape != reference.shape:
        return {"max_abs_diff": float("inf"), "mask_agreement": 0.0}
    return {
        "max_abs_diff": float(np.abs(output - reference).max()),
        "mask_agreement": float((output.argmax(1) == reference.argmax(1)).mean()),
    }


def check(results: dict[str, dict[str, Any]], max_abs_diff: float, min_agreement: float) -> None:
    """Raise StageFailed naming every format whose outputs drift from eager PyTorch."""
    bad = [
        f"{fmt}: max |logit diff| {r['max_abs_diff']:.3g} (allowed {max_abs_diff:g}), mask agreement "
        f"{r['mask_agreement']:.4f} (needed {min_agreement:g})"
        for fmt, r in results.items()
        if not (r["max_abs_diff"] <= max_abs_diff and r["mask_agreement"] >= min_agreement)
    ]
    if bad:
        raise StageFailed("export parity check failed for " + "; ".join(bad))


def export(ctx: RunContext, data: SegData, model: nn.Module) -> dict[str, Any]:
    cfg = ctx.config.export
    size = ctx.config.data.image_size
    # exporters and the mobile runtime work on CPU, in the default memory layout
    net = LogitsOnly(copy.deepcopy(model).cpu().to(memory_format=torch.contiguous_format)).eval()
    sample = data.val.samples[0]
    image = load_image(sample.image)
    x_np, _ = data.val[0]
    x = torch.from_numpy(x_np)[None]
    with torch.no_grad():
        reference = net(x).numpy()
    eager_mask = reference[0].argmax(0)
    rewrites: list[dict[str, Any]] = []
    if cfg.rewrite_padding_taps:  # exact at this fixed input size; parity below compares with the original
        net, done = rewrite_padding_taps(net, x)
        rewrites = [r.as_dict() for r in done]
        for r in done:
            ctx.log(
                f"[export] {r.module}: {r.kind} (dilation {r.dilation[0]} on a {r.map_size[0]}x{r.map_size[1]} map, {r.work:.0%} of the work)"
            )

    results: dict[str, dict[str, Any]] = {}
    runners = {}
    for fmt in cfg.formats:
        name = artifact_name(fmt)
        t0 = time.perf_counter()
        try:
            with ctx.progress(f"export {fmt}", total=None), ctx.atomic_path("export", name) as tmp:
                EXPORTERS[fmt](net, x, tmp, cfg)
        except (ImportError, RuntimeError, ValueError, TypeError, NotImplementedError, AssertionError) as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise StageFailed(f"{fmt} export failed: {type(exc).__name__}: {first}") from exc
        seconds = time.perf_counter() - t0
        path = ctx.path("export", name)
        runner = load(fmt, path)
        output = runner(x_np[None])
        t1 = time.perf_counter()
        runner(x_np[None])
        latency = (time.perf_counter() - t1) * 1000
        res = parity(reference, output)
        runners[fmt] = runner
        results[fmt] = {**res, "path": str(path.relative_to(ctx.run_dir)), "size_bytes": path.stat().st_size,
                        "runtime": RUNTIME[fmt], "export_seconds": round(seconds, 2), "latency_ms": round(latency, 2)}  # fmt: skip
        ctx.add_artifact(path, kind="model", format=fmt, runtime=RUNTIME[fmt], input_shape=list(x.shape),
                         max_abs_diff=res["max_abs_diff"], mask_agreement=res["mask_agreement"],
                         parity_ok=res["max_abs_diff"] <= cfg.max_abs_diff and res["mask_agreement"] >= cfg.min_agreement)  # fmt: skip
        ctx.log_metrics({f"{fmt}_max_abs_diff": res["max_abs_diff"], f"{fmt}_mask_agreement": res["mask_agreement"]})
        ctx.log(f"[export] {fmt}: {path.name} {path.stat().st_size / 1e6:.1f} MB, exported in {seconds:.1f}s, "
                f"{RUNTIME[fmt]} {latency:.1f} ms/image")  # fmt: skip

    info = {
        "input": {
            "name": "input",
            "shape": list(x.shape),
            "dtype": "float32",
            "layout": "NCHW, RGB",
            "normalize": {"mean": list(MEAN), "std": list(STD)},
            "resize": f"{size}x{size} bilinear",
        },  # fmt: skip
        "output": {"name": "logits", "shape": list(reference.shape), "argmax_axis": 1},
        "arch": ctx.config.model.arch,
        "classes": data.classes,
        "trained": ctx.manifest.data.get("records", {}).get("trained", False),
        "parity": {fmt: {k: r[k] for k in ("max_abs_diff", "mask_agreement")} for fmt, r in results.items()},
        "rewrites": rewrites,
    }
    info_path = atomic_write_json(ctx.path("export", "model_info.json"), info)
    ctx.add_artifact(info_path, kind="metadata")

    # the sample overlay is computed by an exported model (the first format asked for), not eager
    shown = cfg.formats[0]
    mask, _ = segment(runners[shown], image, size)
    with ctx.atomic_path("export", "sample_mask.png") as tmp:
        mask_image(mask).save(tmp, format="PNG")
    with ctx.atomic_path("export", "sample_overlay.png") as tmp:
        overlay(image, mask, ctx.config.predict.alpha).save(tmp, format="PNG")
    ctx.add_artifact(ctx.path("export", "sample_mask.png"), kind="mask", computed_by=shown, image=str(sample.image))
    ctx.add_artifact(
        ctx.path("export", "sample_overlay.png"), kind="overlay", computed_by=shown, image=str(sample.image)
    )
    ctx.record("export_parity", json.loads(json.dumps(info["parity"])))
    ctx.record("padding_tap_rewrites", rewrites)
    ctx.record("eager_sample_classes", sorted(int(c) for c in np.unique(eager_mask)))
    check(results, cfg.max_abs_diff, cfg.min_agreement)
    return results
