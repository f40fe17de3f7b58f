"""Involution: composite ops vs the C++ custom operator, in Paddle and PyTorch (CPU).

RedNet stage shapes (batch 8; C = 64, 128, 256, 512 at 56, 28, 14, 7 pixels; K = 7; G = C/16),
the operator alone (x [B, C, H, W] and per-pixel kernels w [B, G, K*K, H, W]; the kernel generator
is the same for both implementations), plus a depthwise 7x7 convolution of the same shape as a
reference. Each case runs in a fresh process so that its peak memory (growth of the process's
maximum resident set over the inputs) is its own. Timings are medians of ``--repeat`` runs.

    python benchmarks/custom_ops.py                 # all shapes, both frameworks (a few minutes)
    python benchmarks/custom_ops.py --quick         # the two smallest shapes, 2 repeats
    python benchmarks/custom_ops.py --threads 2 --repeat 5

Writes benchmarks/results/custom_ops.json and benchmarks/results/custom_ops.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SHAPES = [(64, 56), (128, 28), (256, 14), (512, 7)]
IMPLS = ("composite", "custom", "dwconv7x7")

CASE = r"""
import json, resource, statistics, sys, time
args = json.loads(sys.argv[1])
fw, impl, B, C, H, K, reps = args["fw"], args["impl"], args["batch"], args["channels"], args["size"], 7, args["repeat"]
G = C // 16
import numpy as np
rng = np.random.default_rng(0)
xn = rng.standard_normal((B, C, H, H)).astype(np.float32)
wn = rng.standard_normal((B, G, K * K, H, H)).astype(np.float32) if impl != "dwconv7x7" else rng.standard_normal((C, 1, K, K)).astype(np.float32)
gn = rng.standard_normal((B, C, H, H)).astype(np.float32)
if fw == "paddle":
    import paddle
    import paddle.nn.functional as F
    from mlx_custom_ops import paddle_ops as ops
    if impl == "custom":
        from mlx_custom_ops.build import ensure_paddle_op
        ensure_paddle_op()
    def make(b, h):
        return (paddle.to_tensor(xn[:b, :, :h, :h].copy(), stop_gradient=False),
                paddle.to_tensor((wn[:b, :, :, :h, :h] if wn.ndim == 5 else wn).copy(), stop_gradient=False),
                paddle.to_tensor(gn[:b, :, :h, :h].copy()))
    x, w, g = make(B, H)
    def fwd():
        if impl == "dwconv7x7":
            return F.conv2d(x, w, padding=3, groups=C)
        return (ops.involution_custom if impl == "custom" else ops.involution_composite)(x, w, K, 1)
    def fwd_only():
        with paddle.no_grad():
            return fwd()
    def fwd_bwd():
        y = fwd(); y.backward(g); x.clear_gradient(); w.clear_gradient()
else:
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(args["threads"])
    from mlx_custom_ops import torch_ops as ops
    if impl == "custom":
        from mlx_custom_ops.build import ensure_torch_op
        ensure_torch_op()
    def make(b, h):
        return (torch.from_numpy(xn[:b, :, :h, :h].copy()).requires_grad_(),
                torch.from_numpy((wn[:b, :, :, :h, :h] if wn.ndim == 5 else wn).copy()).requires_grad_(),
                torch.from_numpy(gn[:b, :, :h, :h].copy()))
    x, w, g = make(B, H)
    def fwd():
        if impl == "dwconv7x7":
            return F.conv2d(x, w, padding=3, groups=C)
        return (ops.involution_custom if impl == "custom" else ops.involution_composite)(x, w, K, 1)
    def fwd_only():
        with torch.no_grad():
            return fwd()
    def fwd_bwd():
        y = fwd(); y.backward(g); x.grad = None; w.grad = None
def timed(fn):
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); out.append(time.perf_counter() - t)
    return statistics.median(out)
# warm-up on a tiny problem first (autograd engine, thread pools, kernel registries) so that the
# peak below is the operator's own memory, not one-time framework start-up
real = (x, w, g)
x, w, g = make(1, 3)
fwd_bwd()
x, w, g = real
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
fwd_bwd()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
res = {"forward_ms": 1e3 * timed(fwd_only), "forward_backward_ms": 1e3 * timed(fwd_bwd), "peak_mem_mib": (peak - base) / 1024}
print("RESULT=" + json.dumps(res))
"""


def run_case(fw: str, impl: str, channels: int, size: int, args) -> dict:
    spec = {"fw": fw, "impl": impl, "batch": args.batch, "channels": channels, "size": size,
            "repeat": args.repeat, "threads": args.threads}  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(
        [sys.executable, "-c", CASE, json.dumps(spec)], capture_output=True, text=True, env=env, timeout=1800
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT=")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"case {spec} failed:\n{proc.stderr[-3000:]}")
    return {"framework": fw, "impl": impl, "channels": channels, "size": size, **json.loads(line[7:])}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fws = sorted({r["framework"] for r in rows})
    shapes = sorted({(r["channels"], r["size"]) for r in rows})
    labels = [f"C{c}@{s}" for c, s in shapes]
    fig, axes = plt.subplots(len(fws), 2, figsize=(11, 3.6 * len(fws)), squeeze=False)
    width = 0.8 / len(IMPLS)
    for i, fw in enumerate(fws):
        for j, (key, title) in enumerate(
            (("forward_backward_ms", "forward+backward (ms)"), ("peak_mem_mib", "peak memory (MiB)"))
        ):
            ax = axes[i][j]
            for k, impl in enumerate(IMPLS):
                vals = [
                    next(
                        (
                            r[key]
                            for r in rows
                            if r["framework"] == fw and r["impl"] == impl and (r["channels"], r["size"]) == sh
                        ),
                        0,
                    )
                    for sh in shapes
                ]
                ax.bar([p + k * width for p in range(len(shapes))], vals, width, label=impl)
            ax.set_xticks([p + width for p in range(len(shapes))], labels)
            ax.set_title(f"{fw}: {title}")
            ax.set_yscale("log")
            ax.legend(fontsize=8)
    fig.suptitle("involution: composite vs C++ custom op (batch 8, K=7, G=C/16; CPU)")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frameworks", default="paddle,torch")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--threads", type=int, default=1, help="CPU threads per case (the dev machine's 2 cores are shared)"
    )
    ap.add_argument("--quick", action="store_true", help="two smallest shapes only, 2 repeats")
    ap.add_argument("--out", default=str(ROOT / "results" / "custom_ops.json"))
    args = ap.parse_args()
    shapes = SHAPES[-2:] if args.quick else SHAPES
    if args.quick:
        args.repeat = 2
    rows = []
    t0 = time.perf_counter()
    for fw in args.frameworks.split(","):
        for c, s in shapes:
            for impl in IMPLS:
                rows.append(run_case(fw, impl, c, s, args))
                r = rows[-1]
                print(
                    f"{fw:6s} {impl:10s} C={c:3d} {s:2d}px  fwd {r['forward_ms']:8.2f} ms  fwd+bwd {r['forward_backward_ms']:8.2f} ms  peak {r['peak_mem_mib']:7.1f} MiB",
                    file=sys.stderr,
                )
    summary = []
    for fw in args.frameworks.split(","):
        for c, s in shapes:
            by = {r["impl"]: r for r in rows if r["framework"] == fw and (r["channels"], r["size"]) == (c, s)}
            comp, cust = by["composite"], by["custom"]
            summary.append({"framework": fw, "channels": c, "size": s,
                            "speedup_forward": comp["forward_ms"] / cust["forward_ms"],
                            "speedup_forward_backward": comp["forward_backward_ms"] / cust["forward_backward_ms"],
                            "peak_mem_ratio": comp["peak_mem_mib"] / max(cust["peak_mem_mib"], 1e-3)})  # fmt: skip
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"involution on CPU, batch {args.batch}, K=7, G=C/16, {args.threads} thread(s)")
    for col in ("framework", "shape", "impl", "fwd ms", "fwd+bwd ms", "peak MiB", "custom speed-up fwd / fwd+bwd"):
        table.add_column(col)
    for r in rows:
        s = next(x for x in summary if x["framework"] == r["framework"] and x["channels"] == r["channels"])
        extra = f"{s['speedup_forward']:.2f}x / {s['speedup_forward_backward']:.2f}x" if r["impl"] == "custom" else ""
        table.add_row(r["framework"], f"C{r['channels']}@{r['size']}", r["impl"], f"{r['forward_ms']:.2f}",
                      f"{r['forward_backward_ms']:.2f}", f"{r['peak_mem_mib']:.1f}", extra)  # fmt: skip
    Console().print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "custom_ops",
        "settings": {
            "batch": args.batch,
            "kernel_size": 7,
            "group_channels": 16,
            "repeat": args.repeat,
            "threads": args.threads,
            "shapes": shapes,
            "device": "cpu",
        },  # fmt: skip
        "host": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "note": "shared machine (other jobs on the same cores): absolute timings are noisy",
        },  # fmt: skip
        "rows": rows,
        "summary": summary,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out)
    plot(rows, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}", file=sys.stderr)


if __name__ == "__main__":
    main()
