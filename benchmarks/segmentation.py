"""CPU latency of the segmentation models: eager PyTorch vs TorchScript vs ONNX Runtime vs
ExecuTorch (XNNPACK), optionally torch.compile; one image, warm, median of repeated runs.

    .venv/bin/python benchmarks/segmentation.py                       # mobilenet_v3_large, 400x400
    .venv/bin/python benchmarks/segmentation.py --archs deeplabv3_mobilenet_v3_large,deeplabv3_resnet50 \\
        --compile default,max-autotune --repeats 20

Writes benchmarks/results/segmentation.json and benchmarks/results/segmentation.png. Weights are
random (latency does not depend on their values); the artifacts are the plugin's own exporters'.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from mlx_segmentation.export import export_executorch, export_onnx, export_torchscript
from mlx_segmentation.model import LogitsOnly, build
from mlx_segmentation.runtimes import load
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
console = Console(stderr=True)


def timed(fn, x, warmup: int, repeats: int) -> dict[str, float]:
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t0) * 1000)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "repeats": repeats}


def bench_arch(arch: str, size: int, warmup: int, repeats: int, compile_modes: list[str], work: Path) -> list[dict]:
    torch.manual_seed(0)
    net = LogitsOnly(build(arch, 21, False)).eval()
    x = torch.randn(1, 3, size, size)
    x_np = x.numpy()
    with torch.no_grad():
        ref = net(x).numpy()
    rows = []

    def add(runtime: str, fn, inp, size_bytes=None, export_s=None, out=None):
        console.print(f"[dim]{arch} {runtime} ...[/]")
        r = timed(fn, inp, warmup, repeats)
        diff = float(np.abs(out - ref).max()) if out is not None else 0.0
        rows.append(
            {
                "arch": arch,
                "runtime": runtime,
                **r,
                "size_bytes": size_bytes,
                "export_s": export_s,
                "max_abs_diff": diff,
            }
        )

    def eager(inp):
        with torch.no_grad():
            return net(inp)

    add("eager", eager, x)
    # channels_last sends the dilated depthwise convolutions to oneDNN instead of the slow fallback
    net_cl = LogitsOnly(copy.deepcopy(net.model)).eval().to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def eager_cl(inp):
        with torch.no_grad():
            return net_cl(inp)

    with torch.no_grad():
        add("eager (channels_last)", eager_cl, x_cl, out=net_cl(x_cl).numpy())
    for mode in compile_modes:
        t0 = time.perf_counter()
        compiled = torch.compile(net, mode=None if mode == "default" else mode)
        with torch.no_grad():
            out = compiled(x).numpy()  # first call compiles
        secs = time.perf_counter() - t0

        def run_compiled(inp, c=compiled):
            with torch.no_grad():
                return c(inp)

        add(f"torch.compile ({mode})", run_compiled, x, export_s=secs, out=out)
    exporters = {
        "torchscript": ("model.pt", lambda p: export_torchscript(net, x, p)),
        "onnxruntime": ("model.onnx", lambda p: export_onnx(net, x, p, 18)),
        "executorch-xnnpack": ("model.pte", lambda p: export_executorch(net, x, p)),
    }
    fmt_of = {"torchscript": "torchscript", "onnxruntime": "onnx", "executorch-xnnpack": "executorch"}
    for runtime, (name, fn) in exporters.items():
        path = work / f"{arch}-{name}"
        console.print(f"[dim]{arch} exporting {runtime} ...[/]")
        t0 = time.perf_counter()
        fn(path)
        secs = time.perf_counter() - t0
        runner = load(fmt_of[runtime], path)
        add(runtime, runner, x_np, size_bytes=path.stat().st_size, export_s=secs, out=runner(x_np))
    eager_ms = rows[0]["median_ms"]
    for r in rows:
        r["vs_eager"] = r["median_ms"] / eager_ms
    return rows


def chart(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archs = list(dict.fromkeys(r["arch"] for r in rows))
    fig, axes = plt.subplots(1, len(archs), figsize=(6 * len(archs), 3.8), squeeze=False)
    for ax, arch in zip(axes[0], archs, strict=True):
        sub = [r for r in rows if r["arch"] == arch]
        names = [r["runtime"] for r in sub]
        vals = [r["median_ms"] for r in sub]
        bars = ax.barh(names, vals, color=["#888888" if n.startswith("eager") else "#3b7dd8" for n in names])
        ax.bar_label(
            bars,
            labels=[f"{v:.0f} ms ({r['vs_eager']:.2f}x)" for v, r in zip(vals, sub, strict=True)],
            padding=3,
            fontsize=8,
        )
        ax.set_title(arch, fontsize=10)
        ax.set_xlabel("median latency per image (ms, lower is better)")
        ax.invert_yaxis()
        ax.set_xlim(0, max(vals) * 1.45)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="deeplabv3_mobilenet_v3_large", help="comma-separated torchvision architectures")
    ap.add_argument("--size", type=int, default=400, help="square input side (the ExecuTorch tutorial uses 400)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument(
        "--compile", default="", help="torch.compile modes to add, e.g. default,max-autotune (slow to compile)"
    )
    ap.add_argument("--out", default=str(RESULTS / "segmentation.json"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = [m for m in args.compile.split(",") if m]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs.split(","):
            rows += bench_arch(arch, args.size, args.warmup, args.repeats, modes, Path(tmp))

    table = Table(title=f"segmentation CPU latency, 1x3x{args.size}x{args.size}, median of {args.repeats} warm runs")
    for col in ("arch", "runtime", "median ms", "min ms", "vs eager", "size MB", "export s", "max |diff|"):
        table.add_column(col, justify="left" if col in ("arch", "runtime") else "right")
    for r in rows:
        table.add_row(
            r["arch"], r["runtime"], f"{r['median_ms']:.1f}", f"{r['min_ms']:.1f}", f"{r['vs_eager']:.2f}x",
            f"{r['size_bytes'] / 1e6:.1f}" if r["size_bytes"] else "-", f"{r['export_s']:.1f}" if r["export_s"] else "-",
            f"{r['max_abs_diff']:.1e}",
        )  # fmt: skip
    Console(width=140).print(table)
    best = {}
    for arch in dict.fromkeys(r["arch"] for r in rows):
        exported = [r for r in rows if r["arch"] == arch and not r["runtime"].startswith("eager")]
        b = min(exported, key=lambda r: r["median_ms"])
        best[arch] = {
            "runtime": b["runtime"],
            "vs_eager": round(b["vs_eager"], 3),
            "goal_0.8x_met": b["vs_eager"] <= 0.8,
        }
        Console().print(
            f"{arch}: best {b['runtime']} at {b['vs_eager']:.2f}x eager (goal <= 0.8x: {'met' if b['vs_eager'] <= 0.8 else 'NOT met'})"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    import importlib.metadata as md

    import executorch  # noqa: F401

    doc = {
        "benchmark": "segmentation",
        "input": [1, 3, args.size, args.size],
        "repeats": args.repeats,
        "warmup": args.warmup,
        "torch_threads": torch.get_num_threads(),
        "host": {
            "platform": platform.platform(),
            "cpus": __import__("os").cpu_count(),
            "note": "shared machine: other jobs ran at the same time, absolute timings are noisy",
        },  # fmt: skip
        "versions": {d: md.version(d) for d in ("torch", "torchvision", "executorch", "onnxruntime", "onnx")},
        "rows": rows,
        "best_exported": best,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    chart(
        rows, out.with_suffix(".png"), f"CPU latency 1x3x{args.size}x{args.size} ({doc['host']['cpus']} shared cores)"
    )
    Console().print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
