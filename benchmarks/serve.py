"""Serving benchmark: `mlx serve` throughput and latency on loopback against the in-process predictor.

For each plugin of ``PLUGINS`` (installed ones; ``--plugins`` picks some), a tiny finished run is
made with ``mlx run P export`` and the plugin's small settings in a temporary runs folder (or
taken from ``--runs-dir`` / ``--run``), and each of its formats is served by ``mlx serve`` on
127.0.0.1 (a free port). A predictor that batches gets two servers, batching on
(``--max-batch 8``) and off (``--max-batch 1``); one that does not gets one. After an untimed
warm-up, each server gets the same bounded load (``--requests`` POSTs of the predictor's first OpenAPI example,
``--concurrency`` in flight, ``--cap`` seconds at most), cases interleaved over ``--repeat``
rounds with the in-process predictor timed on the same request (in batches of ``--max-batch``
when it batches). Goal (issue 17): served throughput (batching on where it batches) >= 0.8 x
in-process. Prints a table, writes benchmarks/results/serve.json and serve.png.

    python benchmarks/serve.py                       # every installed plugin (see wall_s in the JSON)
    python benchmarks/serve.py --quick               # fewer requests, one round: a smoke run
    python benchmarks/serve.py --plugins translation,recsys --keep-runs /tmp/serve_runs
    python benchmarks/serve.py --run runs/segmentation/<id> --format torchscript
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from goals import goal

RESULTS = Path(__file__).parent / "results"
TARGET = ">= 0.8"


@dataclass(frozen=True)
class Plugin:
    """How to make a small finished run of one plugin and what of it to serve: one row of ``PLUGINS``.

    overrides: ``--set`` values for ``mlx run P export`` (tiny models, as the plugin's tests use).
    formats:   the ``mlx serve --format`` values benchmarked, each a case of its own (``None``:
               the run's own default).
    """

    overrides: tuple[str, ...] = ()
    formats: tuple[str | None, ...] = (None,)


_RECSYS_TABLES = (
    'model.tables=[{name="product_table",embedding_dim=8,num_embeddings=512,feature_names=["product","history"]},'
    '{name="user_table",embedding_dim=8,num_embeddings=256,feature_names=["user"]},'
    '{name="category_table",embedding_dim=8,num_embeddings=16,feature_names=["category"]}]'
)

#: one row per served plugin; a plugin whose predictor lands (custom_ops, quant) is one more row
#: with its tests' tiny settings and its formats. Plugins not installed are skipped and say so.
PLUGINS: dict[str, Plugin] = {
    # the core's test plugin (mlx-testplugins, tests/core/testplugins): a predictor of no cost,
    # so its row is what HTTP + JSON + the batcher cost per request on this machine
    "linreg": Plugin(),
    "segmentation": Plugin(
        (
            "data.image_size=32",
            "data.sample_train=8",
            "data.sample_val=4",
            "train.batch_size=4",
            "train.epochs=1",
            'export.formats=["torchscript"]',
        ),
        formats=("torchscript",),  # its batched export (the ExecuTorch and ONNX ones take one image)
    ),  # fmt: skip
    "translation": Plugin(
        (
            "data.size=120",
            "data.vocab_size=150",
            "model.d_model=32",
            "model.d_ff=64",
            "model.num_heads=2",
            "model.num_layers=1",
            "train.epochs=1",
            "train.batch_size=16",
            "train.eval_samples=8",
            "train.generation_max_length=16",
            "export.parity_samples=4",
            "export.parity_max_new_tokens=12",
            "predict.max_new_tokens=16",
        ),
        formats=("eager", "exported"),
    ),  # fmt: skip
    "multimodal": Plugin(
        (
            "data.n_train=48",
            "data.n_val=16",
            "data.image_size=16",
            "data.wordpiece_vocab_size=60",
            "model.hidden_size=16",
            "model.image_layers=1",
            "model.text_layers=1",
            "model.patch_size=8",
            "train.epochs=1",
            "train.batch_size=16",
        ),
    ),  # fmt: skip
    "recsys": Plugin(
        (
            "data.examples=3000",
            "data.users=100",
            "data.products=300",
            "data.categories=10",
            "data.batch_size=64",
            _RECSYS_TABLES,
            "model.dense_arch=[16]",
            "model.over_arch=[16]",
            "train.epochs=1",
        ),
        formats=("int8",),  # --format float serves the float scorer
    ),  # fmt: skip
}


def installed() -> set[str]:
    from importlib.metadata import entry_points

    return {ep.name for ep in entry_points(group="mlx")}


def only(name: str) -> dict[str, str]:
    """The environment that loads only plugin ``name`` (no other plugin's imports in the timings)."""
    return {**os.environ, "MLX_LOAD_PLUGINS": name}


def finished_run(name: str, runs_dir: Path) -> Path | None:
    """The newest run of ``name`` under ``runs_dir`` whose export stage completed, if any."""
    for run_json in sorted((runs_dir / name).glob("*/run.json"), reverse=True):
        with contextlib.suppress(ValueError, OSError):
            stages = json.loads(run_json.read_text()).get("stages", {})
            if stages.get("export", {}).get("status") == "completed":
                return run_json.parent
    return None


def make_run(name: str, spec: Plugin, runs_dir: Path) -> tuple[Path | None, str]:
    """(run dir, how it was got) of a finished tiny export run of ``name``: reused from
    ``runs_dir`` when one is there, else made with ``mlx run NAME export``."""
    found = finished_run(name, runs_dir)
    if found:
        return found, "reused"
    cmd = [sys.executable, "-m", "mlx_core", "run", name, "export", "--runs-dir", str(runs_dir), "--device", "cpu"]
    cmd += [arg for o in spec.overrides for arg in ("--set", o)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=only(name))
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"mlx run {name} export exited {proc.returncode}: {tail}"
    return Path(proc.stdout.strip().splitlines()[-1]), f"made in {time.perf_counter() - t0:.0f} s"


@contextlib.contextmanager
def loaded(run_dir: Path, fmt: str | None) -> Iterator[Any]:
    """The run's predictor in this process, built as ``mlx serve`` builds it."""
    from mlx_core.plugins import Registry
    from mlx_core.serving import build_predictor

    name = json.loads((run_dir / "run.json").read_text())["plugin"]
    old = os.environ.get("MLX_LOAD_PLUGINS")
    os.environ["MLX_LOAD_PLUGINS"] = name
    try:
        predictor, _ = build_predictor(Registry(), run_dir, fmt=fmt)
    finally:
        if old is None:
            del os.environ["MLX_LOAD_PLUGINS"]
        else:
            os.environ["MLX_LOAD_PLUGINS"] = old
    try:
        yield predictor
    finally:
        if predictor.close:
            predictor.close()


def in_process(predictor: Any, body: dict, batch: int, seconds: float) -> float:
    """Requests per second of the predictor itself (prepare + predict), ``batch`` at a time."""
    reqs = [predictor.request.model_validate(body) for _ in range(batch)]
    predictor.run(reqs)  # warm up
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        predictor.run(reqs)
        done += batch
    return done / (time.perf_counter() - t0)


async def load(url: str, body: dict, requests: int, concurrency: int, cap: float) -> dict:
    """``requests`` POSTs of ``body``, ``concurrency`` at a time, stopped at ``cap`` seconds."""
    import httpx

    latencies: list[float] = []
    errors = 0
    sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=max(300.0, cap), limits=limits) as client:
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

    ok = len(lat) - errors
    return {"requests": len(lat), "errors": errors, "wall_s": wall, "rps": ok / wall, "p50_ms": pct(0.50),
            "p95_ms": pct(0.95), "p99_ms": pct(0.99), "load_avg_1min": os.getloadavg()[0]}  # fmt: skip


def start_servers(run_dir: Path, fmt: str | None, batches: bool, args: argparse.Namespace) -> dict[str, Any]:
    """The servers of one case: batching on and off when the predictor batches, else one."""
    from mlx_core.testing_serve import start, stop

    name = json.loads((run_dir / "run.json").read_text())["plugin"]
    base = ["--format", fmt] if fmt else []
    wanted = {"batching on": ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)],
              "batching off": ["--max-batch", "1"]} if batches else {"unbatched": ["--max-batch", "1"]}  # fmt: skip
    # started side by side: on a loaded 2-core machine one start (imports, artifact checks) takes a minute
    with ThreadPoolExecutor(len(wanted)) as pool:
        futures = {case: pool.submit(start, run_dir, *base, *extra, env={"MLX_LOAD_PLUGINS": name})
                   for case, extra in wanted.items()}  # fmt: skip
    servers = {case: f.result() for case, f in futures.items() if f.exception() is None}
    failed = next((f.exception() for f in futures.values() if f.exception() is not None), None)
    if failed is not None:
        for server in servers.values():
            stop(server)
        raise failed
    return servers


def bench_case(run_dir: Path, fmt: str | None, args: argparse.Namespace) -> dict:
    """One served format of one run: rounds of in-process timing and each server's load, interleaved."""
    import httpx

    from mlx_core.testing_serve import stop

    plugin = json.loads((run_dir / "run.json").read_text())["plugin"]
    inproc: list[float] = []
    ratios: list[float] = []
    with loaded(run_dir, fmt) as predictor:
        body = predictor.examples[0]
        batch = args.max_batch if predictor.batches else 1
        facts = dict(predictor.facts)
        servers = start_servers(run_dir, fmt, predictor.batches, args)
        cases: dict[str, list[dict]] = {name: [] for name in servers}
        served_case = "batching on" if predictor.batches else "unbatched"
        try:
            for i in range(args.repeat):  # interleaved: load drifts hit every case alike
                rps = in_process(predictor, body, batch, args.in_process_s)
                inproc.append(rps)
                if i == 0:  # as in process, untimed first calls (TorchScript's profiling runs, lazy inits)
                    n = max(2, min(2 * args.concurrency, int(rps * 3)))  # about 3 s of the predictor's work
                    for server in servers.values():
                        asyncio.run(load(server.url, body, n, min(n, args.concurrency), args.cap))
                for name, server in servers.items():
                    cases[name].append(asyncio.run(load(server.url, body, args.requests, args.concurrency, args.cap)))
                ratios.append(cases[served_case][-1]["rps"] / rps)
            stats = httpx.get(servers[served_case].url + "/info", timeout=60).json()["batching"]
        finally:
            for server in servers.values():
                stop(server)

    def med(rows: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    summary = {name: {k: med(rows, k) for k in ("rps", "p50_ms", "p95_ms", "p99_ms")} | {
        "errors": sum(r["errors"] for r in rows), "requests": sum(r["requests"] for r in rows)}
        for name, rows in cases.items()}  # fmt: skip
    label = f"{plugin} ({fmt or facts.get('format', 'default')})"
    ip, on = statistics.median(inproc), summary[served_case]["rps"]
    overhead_ms = (1 / on - 1 / ip) * 1000 if on > 0 else float("nan")
    reason = (
        f"served {on:.3g} req/s against {ip:.3g} in process: the server adds {overhead_ms:.1f} ms a request "
        f"(HTTP, JSON{'/base64' if 'image' in json.dumps(body) else ''}, the event loop and batcher), and on "
        f"{os.cpu_count()} cores the load generator and the in-process timing share the CPU with the server "
        f"(load average {os.getloadavg()[0]:.1f})"
    )
    how = "batching on" if predictor.batches else "the predictor does not batch"
    record = goal(f"{label}: served throughput ({how}) / in-process predictor", statistics.median(ratios), TARGET,
                  reason=reason, ratio_min=round(min(ratios), 4))  # fmt: skip
    return {"plugin": plugin, "format": fmt, "label": label, "run_dir": str(run_dir), "batches": predictor.batches,
            "in_process_batch": batch, "in_process_rps": ip, "in_process_rounds": inproc, "served_case": served_case,
            "server_overhead_ms": overhead_ms, "cases": summary, "rounds": cases, "batching_stats": stats,
            "facts": {k: v for k, v in facts.items() if isinstance(v, str | int | float | bool)}, **record}  # fmt: skip


def pick(args: argparse.Namespace) -> tuple[list[tuple[Path, str | None]], dict[str, str]]:
    """The (run dir, format) cases to benchmark and a note for each plugin picked or skipped."""
    notes: dict[str, str] = {}
    todo: list[tuple[Path, str | None]] = []
    if args.run:
        return [(Path(r), args.format) for r in args.run], {r: "given with --run" for r in args.run}
    names = args.plugins.split(",") if args.plugins else list(PLUGINS)
    unknown = [n for n in names if n not in PLUGINS]
    if unknown:
        raise SystemExit(f"error: --plugins names {', '.join(unknown)}; expected some of {', '.join(PLUGINS)}")
    have = installed()
    runs_dir = Path(args.keep_runs or tempfile.mkdtemp(prefix="mlx-serve-bench-"))
    for name in names:
        if name not in have:
            notes[name] = "skipped: not installed"
            continue
        run_dir, how = make_run(name, PLUGINS[name], runs_dir)
        notes[name] = how
        if run_dir is None:
            print(f"warning: {name}: {how}", file=sys.stderr)
            continue
        formats = [args.format] if args.format else PLUGINS[name].formats
        todo += [(run_dir, fmt) for fmt in formats]
    return todo, notes


def print_table(results: list[dict], concurrency: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("plugin (format)", "case", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "requests",
                  title=f"mlx serve on loopback, {concurrency} concurrent", title_justify="left")  # fmt: skip
    for r in results:
        table.add_row(r["label"], f"in-process predictor, batch {r['in_process_batch']}", f"{r['in_process_rps']:.3g}",
                      "", "", "", "", "")  # fmt: skip
        for name, c in r["cases"].items():
            table.add_row("", f"served, {name}", f"{c['rps']:.3g}", f"{c['p50_ms']:.1f}", f"{c['p95_ms']:.1f}",
                          f"{c['p99_ms']:.1f}", str(c["errors"]), str(c["requests"]))  # fmt: skip
        table.add_row("", f"served ({r['served_case']}) / in-process", f"{r['ratio']:.2f}", "", "", "",
                      "met" if r["met"] else "not met", f"target {TARGET}")  # fmt: skip
    Console(width=160).print(table)


def plot(results: list[dict], concurrency: int, png: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 2, figsize=(12, 2.2 + 0.6 * len(results)))
    names = [r["label"] for r in results]
    ys = range(len(results))
    bars = [
        ("in-process", lambda r: r["in_process_rps"], "#999"),
        ("served, batching on / unbatched", lambda r: r["cases"][r["served_case"]]["rps"], "#2a7"),
        ("served, batching off", lambda r: r["cases"].get("batching off", {}).get("rps", 0), "#c63"),
    ]
    for i, (label, get, colour) in enumerate(bars):
        axes[0].barh([y + i * 0.27 for y in ys], [get(r) for r in results], height=0.27, label=label, color=colour)
    axes[0].set_xscale("log")
    axes[0].set_yticks([y + 0.27 for y in ys], names)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("requests per second (log)")
    axes[0].legend(fontsize=8)
    for i, (p, colour) in enumerate([("p50_ms", "#2a7"), ("p95_ms", "#7a2"), ("p99_ms", "#c33")]):
        axes[1].barh([y + i * 0.27 for y in ys], [r["cases"][r["served_case"]][p] for r in results], height=0.27,
                     label=p.replace("_ms", ""), color=colour)  # fmt: skip
    axes[1].set_xscale("log")
    axes[1].set_yticks([y + 0.27 for y in ys], names)
    axes[1].invert_yaxis()
    axes[1].set_xlabel("served latency, ms (log; batching on where it batches)")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"mlx serve: {concurrency} concurrent on loopback")
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", help=f"comma-separated subset of {','.join(PLUGINS)} (default: all installed)")
    parser.add_argument("--quick", action="store_true", help="200 requests, 5 s cap, one round: a smoke run")
    parser.add_argument("--keep-runs", help="runs folder to reuse finished runs from and keep new ones in")
    parser.add_argument("--run", action="append", default=[], help="a finished run to serve instead (repeatable)")
    parser.add_argument("--format", help="the one format to serve (default: each plugin's formats of PLUGINS)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--cap", type=float, default=12.0, help="seconds at most per case and round")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--in-process-s", type=float, default=3.0)
    parser.add_argument("--out", default=str(RESULTS / "serve.json"), help="results JSON (the PNG goes beside it)")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.cap, args.repeat, args.in_process_s = min(args.requests, 200), 5.0, 1, 1.0

    from httpx import HTTPError

    from mlx_core import MlxError

    t0 = time.perf_counter()
    load_before = os.getloadavg()
    todo, notes = pick(args)
    if not todo:
        raise SystemExit("error: no run to serve: pass --run RUN_DIR or install a plugin of PLUGINS")
    results = []
    for run_dir, fmt in todo:
        what = f"{run_dir.parent.name} {fmt or ''}".strip()
        print(f"serve bench: {what} ...", file=sys.stderr, flush=True)
        try:
            results.append(bench_case(run_dir, fmt, args))
        except (AssertionError, MlxError, HTTPError, OSError, RuntimeError) as exc:
            # one case failing (a server that never gets ready, a run that will not load) leaves the others measured
            notes[what] = (
                f"failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
            )
            print(f"warning: {what}: {notes[what]}", file=sys.stderr)
    if not results:
        raise SystemExit("error: no case measured: " + "; ".join(f"{k}: {v}" for k, v in notes.items()))
    out = {
        "benchmark": "serve",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_before": list(load_before),
            "load_avg_after": list(os.getloadavg()),
        },  # fmt: skip
        "settings": vars(args),
        "runs": notes,
        "wall_s": round(time.perf_counter() - t0, 1),
        "goals": [
            {k: r[k] for k in ("goal", "ratio", "ratio_min", "target", "met", "reason") if k in r} for r in results
        ],
        "plugins": results,
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(path)  # atomic: a half-written results file never replaces the last good one
    print_table(results, args.concurrency)
    print(f"{len(results)} cases in {out['wall_s']:.0f} s, load average {os.getloadavg()[0]:.1f}; wrote {path}")
    plot(results, args.concurrency, path.with_suffix(".png"))


if __name__ == "__main__":
    main()
