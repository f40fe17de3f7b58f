"""Benchmark of the multimodal plugin (FLAVA VQA classifier) on this machine.

* training step time (AdamW, forward + backward + step) and peak memory of the reduced and the
  full FLAVA configuration at several batch sizes;
* inference latency of the eager model against its reloaded ``torch.export`` program.

Each measurement runs in its own process so that its peak resident memory (``ru_maxrss``) is its
own. Prints a table and writes ``benchmarks/results/multimodal.json`` and ``.png``.

    .venv/bin/python benchmarks/multimodal.py                       # reduced at 1,4,8; full at 1
    .venv/bin/python benchmarks/multimodal.py --full-batches 1,4,8 --full-latency
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"

# the plugin's defaults: reduced = 32px images in 8px patches, hidden 64, 2/2/1 layers; full = FLAVA sizes
SIZES = {
    "reduced": {"image_size": 32, "vocab_size": 400, "max_length": 16, "num_classes": 14},
    "full": {"image_size": 224, "vocab_size": 30522, "max_length": 16, "num_classes": 3129},
}


def build(size: str):
    import torch
    from mlx_multimodal.model import flava_kwargs, make_classifier

    s = SIZES[size]
    torch.manual_seed(0)
    kwargs = flava_kwargs(size, hidden=64, heads=2, image_layers=2, text_layers=2, mm_layers=1,
                          image_size=s["image_size"], patch_size=8, vocab_size=s["vocab_size"],
                          max_length=s["max_length"])  # fmt: skip
    return make_classifier(s["num_classes"], kwargs), s


def inputs(s: dict, batch: int):
    import torch

    g = torch.Generator().manual_seed(batch)
    image = torch.randn(batch, 3, s["image_size"], s["image_size"], generator=g)
    text = torch.randint(5, s["vocab_size"], (batch, s["max_length"]), generator=g)
    labels = torch.randint(0, s["num_classes"], (batch,), generator=g)
    return image, text, labels


def worker_train(size: str, batch: int, steps: int) -> dict:
    import torch

    model, s = build(size)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    image, text, labels = inputs(s, batch)

    def step() -> None:
        loss = model.loss(model(image, text), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up (allocates the optimizer state)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"kind": "train", "size": size, "batch": batch, "steps": steps,
            "parameters": sum(p.numel() for p in model.parameters()),
            "step_s_median": times[len(times) // 2], "step_s_min": times[0],
            "samples_per_s": batch / times[len(times) // 2],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def worker_latency(size: str, batch: int, runs: int) -> dict:
    import torch

    model, s = build(size)
    model.eval()
    image, text, _ = inputs(s, batch)
    example = inputs(s, 2)[:2]  # as the plugin: traced at batch 2 (a size-1 dimension would be specialised)
    dim = torch.export.Dim("batch", min=1, max=4096)
    t0 = time.perf_counter()
    with torch.no_grad():
        program = torch.export.export(model, example, dynamic_shapes={"image": {0: dim}, "text": {0: dim}})
    export_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt2"
        torch.export.save(program, str(path))
        reloaded = torch.export.load(str(path)).module()

    def timed(fn) -> tuple[float, object]:
        with torch.no_grad():
            out = fn(image, text)  # warm-up
            ts = []
            for _ in range(runs):
                t = time.perf_counter()
                fn(image, text)
                ts.append(time.perf_counter() - t)
        ts.sort()
        return ts[len(ts) // 2], out

    eager_s, eager_out = timed(model)
    exported_s, exp_out = timed(reloaded)
    return {"kind": "latency", "size": size, "batch": batch, "runs": runs, "export_s": export_s,
            "eager_ms": eager_s * 1e3, "exported_ms": exported_s * 1e3,
            "max_abs_diff": float((eager_out - exp_out).abs().max())}  # fmt: skip


def spawn(*args: str, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--worker", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if "Error" in ln] or proc.stderr.strip().splitlines() or ["?"]
        return {"error": errors[-1][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in rows if r.get("kind") == "train" and "error" not in r]
    lat = [r for r in rows if r.get("kind") == "latency" and "error" not in r]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    for size, marker in (("reduced", "o-"), ("full", "s-")):
        rs = [r for r in train if r["size"] == size]
        if rs:
            ax[0].plot([r["batch"] for r in rs], [r["step_s_median"] for r in rs], marker, label=size)
            ax[1].plot([r["batch"] for r in rs], [r["peak_rss_mb"] for r in rs], marker, label=size)
    ax[0].set(xlabel="batch size", ylabel="seconds / training step", yscale="log", title="AdamW step (CPU)")
    ax[1].set(xlabel="batch size", ylabel="peak RSS (MiB)", title="peak memory of the process")
    for a in ax[:2]:
        a.legend()
    labels = [f"{r['size']}\nbatch {r['batch']}" for r in lat]
    x = range(len(lat))
    ax[2].bar([i - 0.2 for i in x], [r["eager_ms"] for r in lat], 0.4, label="eager")
    ax[2].bar([i + 0.2 for i in x], [r["exported_ms"] for r in lat], 0.4, label="torch.export (reloaded)")
    ax[2].set_xticks(list(x), labels)
    ax[2].set(ylabel="ms / forward", yscale="log", title="inference latency (median)")
    ax[2].legend()
    fig.suptitle("mlx multimodal: FLAVA VQA classifier on CPU (shared 2-core machine: timings are noisy)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reduced-batches", default="1,4,8")
    ap.add_argument("--full-batches", default="1", help="comma list; empty to skip the full model")
    ap.add_argument("--steps", type=int, default=5, help="timed training steps per point (after a warm-up)")
    ap.add_argument("--full-steps", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30, help="timed forwards per latency point")
    ap.add_argument("--full-latency", action="store_true", help="also export and time the full model")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads in each worker")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.worker:
        import torch

        torch.set_num_threads(int(os.environ.get("MLX_BENCH_THREADS", "1")))
        kind, size, batch, n = a.worker[0], a.worker[1], int(a.worker[2]), int(a.worker[3])
        fn = worker_train if kind == "train" else worker_latency
        print(json.dumps(fn(size, batch, n)))
        return

    os.environ["MLX_BENCH_THREADS"] = str(a.threads)
    plan = [("train", "reduced", int(b), a.steps) for b in a.reduced_batches.split(",") if b]
    plan += [("train", "full", int(b), a.full_steps) for b in a.full_batches.split(",") if b]
    plan += [("latency", "reduced", 1, a.runs), ("latency", "reduced", 8, a.runs)]
    if a.full_latency:
        plan += [("latency", "full", 1, max(3, a.runs // 10))]

    from rich.console import Console
    from rich.table import Table

    console = Console()
    rows = []
    t_all = time.perf_counter()
    for kind, size, batch, n in plan:
        console.print(f"{kind} {size} batch {batch} ...", highlight=False)
        r = spawn(kind, size, str(batch), str(n), timeout=a.timeout)
        rows.append({"kind": kind, "size": size, "batch": batch, **r})

    t = Table(title="training step (AdamW), CPU")
    for c in ("config", "params", "batch", "s/step (median)", "samples/s", "peak RSS MiB"):
        t.add_column(c)
    for r in rows:
        if r["kind"] == "train":
            if "error" in r:
                t.add_row(r["size"], "", str(r["batch"]), r["error"], "", "")
            else:
                t.add_row(r["size"], f"{r['parameters'] / 1e6:.2f}M", str(r["batch"]), f"{r['step_s_median']:.3f}",
                          f"{r['samples_per_s']:.1f}", f"{r['peak_rss_mb']:.0f}")  # fmt: skip
    console.print(t)
    t = Table(title="inference latency: eager vs reloaded torch.export program")
    for c in ("config", "batch", "eager ms", "exported ms", "export s", "max |diff|"):
        t.add_column(c)
    for r in rows:
        if r["kind"] == "latency":
            if "error" in r:
                t.add_row(r["size"], str(r["batch"]), r["error"], "", "", "")
            else:
                t.add_row(r["size"], str(r["batch"]), f"{r['eager_ms']:.2f}", f"{r['exported_ms']:.2f}",
                          f"{r['export_s']:.1f}", f"{r['max_abs_diff']:.2e}")  # fmt: skip
    console.print(t)

    import torch

    a.out.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "platform": platform.platform(), "cpus": os.cpu_count(),
            "threads_per_worker": a.threads, "wall_s": time.perf_counter() - t_all,
            "note": "2 CPU cores shared with other jobs: absolute timings are noisy"}  # fmt: skip
    (a.out / "multimodal.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    plot(rows, a.out / "multimodal.png")
    console.print(f"wrote {a.out / 'multimodal.json'} and {a.out / 'multimodal.png'}", highlight=False)


if __name__ == "__main__":
    main()
