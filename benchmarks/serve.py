"""Serving benchmark: `mlx serve` throughput and latency on loopback against the in-process predictor.

For each finished run given (default: a fresh linreg run, when the core test plugins are
installed), two servers on 127.0.0.1 (batching on: --max-batch 8; off: --max-batch 1) get the
same bounded load (REQUESTS requests, CONCURRENCY in flight, a time cap per case), cases
interleaved over REPEAT rounds; the in-process predictor runs the same request (its first
OpenAPI example) in batches of the same size. Goal (issue 17): served throughput with batching
on >= 0.8 x in-process. Prints a table, writes benchmarks/results/serve.json and serve.png.

    python benchmarks/serve.py --run runs/segmentation/<id> [--requests 2000 --concurrency 16 --cap 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
TARGET = 0.8


def in_process(run_dir: str, batch: int, seconds: float, fmt: str | None) -> tuple[float, dict]:
    """Requests per second of the predictor itself (prepare + predict), ``batch`` at a time."""
    from mlx_core.plugins import Registry
    from mlx_core.serving import build_predictor

    predictor, _ = build_predictor(Registry(), run_dir, fmt=fmt)
    example = predictor.examples[0]
    size = batch if predictor.batches else 1
    reqs = [predictor.request.model_validate(example) for _ in range(size)]
    predictor.run(reqs)  # warm up
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        predictor.run(reqs)
        done += size
    return done / (time.perf_counter() - t0), example


async def load(url: str, body: dict, requests: int, concurrency: int, cap: float) -> dict:
    """``requests`` POSTs of ``body``, ``concurrency`` at a time, stopped at ``cap`` seconds."""
    import httpx

    latencies: list[float] = []
    errors = 0
    sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        t0 = time.perf_counter()

        async def worker() -> None:
            nonlocal sent, errors
            while sent < requests and time.perf_counter() - t0 < cap:
                sent += 1
                t = time.perf_counter()
                try:
                    r = await client.post("/predict", json=body)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t)
                errors += not ok

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    return {"requests": len(lat), "errors": errors, "wall_s": wall, "rps": len(lat) / wall,
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99)}  # fmt: skip


def linreg_run(tmp: Path) -> str | None:
    proc = subprocess.run([sys.executable, "-m", "mlx_core", "run", "linreg", "export", "--runs-dir", str(tmp)],
                          capture_output=True, text=True)  # fmt: skip
    return proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 else None


def bench_run(run_dir: str, args: argparse.Namespace) -> dict:
    from mlx_core.testing_serve import start, stop

    ratios: list[float] = []
    cases: dict[str, list[dict]] = {"batching on": [], "batching off": []}
    inproc: list[float] = []
    fmt = ["--format", args.format] if args.format else []
    servers = {
        "batching on": start(run_dir, *fmt, "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)),
        "batching off": start(run_dir, *fmt, "--max-batch", "1"),
    }
    plugin = json.loads((Path(run_dir) / "run.json").read_text())["plugin"]
    try:
        for _ in range(args.repeat):  # interleaved: load drifts hit every case alike
            rps, body = in_process(run_dir, args.max_batch, args.in_process_s, args.format)
            inproc.append(rps)
            for name, server in servers.items():
                cases[name].append(asyncio.run(load(server.url, body, args.requests, args.concurrency, args.cap)))
            ratios.append(cases["batching on"][-1]["rps"] / rps)
        batches = __import__("httpx").get(servers["batching on"].url + "/info").json()["batching"]
    finally:
        for server in servers.values():
            stop(server)

    def med(rows: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    summary = {name: {k: med(rows, k) for k in ("rps", "p50_ms", "p95_ms", "p99_ms")} | {
        "errors": sum(r["errors"] for r in rows), "requests": sum(r["requests"] for r in rows)}
        for name, rows in cases.items()}  # fmt: skip
    ratio = statistics.median(ratios)
    goal = {
        "goal": f"{plugin}: served throughput with batching on >= {TARGET} x in-process predictor",
        "ratio": ratio,
        "ratio_min": min(ratios),
        "target": f">= {TARGET}",
        "met": ratio >= TARGET,
    }
    if not goal["met"]:
        on = summary["batching on"]["rps"]
        goal["reason"] = (
            f"served {on:.0f} req/s against {statistics.median(inproc):.0f} in process: per request the server "
            f"adds HTTP, JSON/base64 and the event loop, and on {os.cpu_count()} cores the load generator shares "
            f"the CPU with the server (load average {os.getloadavg()[0]:.1f})"
        )
    return {"plugin": plugin, "run_dir": run_dir, "in_process_rps": statistics.median(inproc), "cases": summary,
            "rounds": {k: v for k, v in cases.items()}, "batching_stats": batches, **goal}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], help="a finished run to serve (repeatable)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--cap", type=float, default=30.0, help="seconds at most per case and round")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--in-process-s", type=float, default=3.0)
    parser.add_argument("--format", help="exported format to serve (default: each run's own)")
    args = parser.parse_args()

    import tempfile

    from rich.console import Console
    from rich.table import Table

    runs = list(args.run)
    tmp = tempfile.mkdtemp(prefix="mlx-serve-bench-")
    if not runs:
        made = linreg_run(Path(tmp))
        runs = [made] if made else []
    if not runs:
        raise SystemExit("no run to serve: pass --run RUN_DIR (a finished export run)")
    load_before = os.getloadavg()[0]
    results = [bench_run(r, args) for r in runs]
    out = {
        "benchmark": "serve",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1min": [load_before, os.getloadavg()[0]],
        },  # fmt: skip
        "settings": vars(args),
        "goals": [
            {k: r[k] for k in ("goal", "ratio", "ratio_min", "target", "met", "reason") if k in r} for r in results
        ],
        "plugins": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve.json").write_text(json.dumps(out, indent=2) + "\n")

    table = Table("plugin", "case", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "requests",
                  title=f"mlx serve on loopback, {args.concurrency} concurrent", title_justify="left")  # fmt: skip
    for r in results:
        table.add_row(r["plugin"], "in-process predictor", f"{r['in_process_rps']:.3g}", "", "", "", "", "")
        for name, c in r["cases"].items():
            table.add_row("", f"served, {name}", f"{c['rps']:.3g}", f"{c['p50_ms']:.1f}", f"{c['p95_ms']:.1f}",
                          f"{c['p99_ms']:.1f}", str(c["errors"]), str(c["requests"]))  # fmt: skip
        table.add_row("", "served on / in-process", f"{r['ratio']:.2f}", "", "", "", "", f"target >= {TARGET}")
    Console(width=150).print(table)

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2 + 0.3 * len(results)))
    names = [r["plugin"] for r in results]
    ys = range(len(results))
    for i, (label, get, colour) in enumerate(
        [
            ("in-process", lambda r: r["in_process_rps"], "#999"),
            ("served, batching on", lambda r: r["cases"]["batching on"]["rps"], "#2a7"),
            ("served, batching off", lambda r: r["cases"]["batching off"]["rps"], "#c63"),
        ]  # fmt: skip
    ):
        axes[0].barh([y + i * 0.27 for y in ys], [get(r) for r in results], height=0.27, label=label, color=colour)
    axes[0].set_yticks([y + 0.27 for y in ys], names)
    axes[0].set_xlabel("requests per second")
    axes[0].legend(fontsize=8)
    for i, (p, colour) in enumerate([("p50_ms", "#2a7"), ("p95_ms", "#7a2"), ("p99_ms", "#c33")]):
        axes[1].barh([y + i * 0.27 for y in ys], [r["cases"]["batching on"][p] for r in results], height=0.27,
                     label=p.replace("_ms", ""), color=colour)  # fmt: skip
    axes[1].set_yticks([y + 0.27 for y in ys], names)
    axes[1].set_xlabel("latency with batching on, ms")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"mlx serve: {args.concurrency} concurrent on loopback")
    fig.tight_layout()
    fig.savefig(RESULTS / "serve.png", dpi=120)


if __name__ == "__main__":
    main()
