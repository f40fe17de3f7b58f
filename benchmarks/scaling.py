"""scaling benchmark: training samples/s of each distributing plugin at 1 and 2 processes.

Both cases use 2 threads in total (1 process x 2 threads, 2 processes x 1 thread), so the ratio
shows what the launcher and the collectives cost, not more cores. Every case is a real
`mlx run PLUGIN train [--nproc 2]` (the core launcher: torch.distributed.run, gloo on CPU);
cases are interleaved over the repeats; median and min per case.

PLUGINS is the table to extend: plugin -> (config overrides, per-process thread key, the
run.json metric that holds the job's samples/s).

    python benchmarks/scaling.py [--repeats 2] [--plugins recsys translation]

Table on stdout, benchmarks/results/scaling.json and scaling.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

THREADS_TOTAL = 2
TARGET = 0.8  # 2 processes x 1 thread keep at least 0.8x the samples/s of 1 process x 2 threads

RECSYS_TABLES = (
    "model.tables=["
    '{name="product_table",embedding_dim=16,num_embeddings=2048,feature_names=["product","history"]},'
    '{name="user_table",embedding_dim=16,num_embeddings=1024,feature_names=["user"]},'
    '{name="category_table",embedding_dim=16,num_embeddings=64,feature_names=["category"]}]'
)
#: plugin -> (overrides, thread key (per process), run.json metric with the job's samples/s)
PLUGINS: dict[str, tuple[list[str], str, str]] = {
    "recsys": (
        [
            "data.examples=12000",
            "data.batch_size=256",
            RECSYS_TABLES,
            "model.dense_arch=[32]",
            "model.over_arch=[32]",
            "train.epochs=1",
            "train.allow_oversubscribe=true",
        ],
        "train.threads",
        "examples_per_s",
    ),  # fmt: skip
    "translation": (
        [
            "data.size=400",
            "data.vocab_size=200",
            "model.d_model=64",
            "model.d_ff=128",
            "model.num_heads=2",
            "model.num_layers=2",
            "train.epochs=2",
            "train.batch_size=32",
            "train.eval_samples=8",
            "train.generation_max_length=8",
        ],
        "train.num_threads",
        "train_examples_per_s",
    ),  # fmt: skip
}


def one_case(plugin: str, nproc: int, runs: Path) -> dict:
    sets, thread_key, metric = PLUGINS[plugin]
    overrides = [*sets, f"{thread_key}={THREADS_TOTAL // nproc}"]
    cmd = [sys.executable, "-m", "mlx_core", "run", plugin, "train", "--runs-dir", str(runs), "--device", "cpu",
           *[a for s in overrides for a in ("--set", s)], *(["--nproc", str(nproc)] if nproc > 1 else [])]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{plugin} --nproc {nproc} failed:\n{proc.stderr[-2000:]}")
    m = json.loads((Path(proc.stdout.strip().splitlines()[-1]) / "run.json").read_text())
    return {"samples_per_s": float(m["metrics"][metric]), "wall_s": wall,
            "ranks": m.get("launch", {}).get("ranks")}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--plugins", nargs="+", default=list(PLUGINS), choices=list(PLUGINS))
    args = ap.parse_args()
    samples: dict[tuple[str, int], list[dict]] = {(p, n): [] for p in args.plugins for n in (1, 2)}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):  # interleaved: every case once per repeat
            for plugin in args.plugins:
                for n in (1, 2):
                    print(f"repeat {r + 1}: {plugin} x{n}", file=sys.stderr, flush=True)
                    samples[(plugin, n)].append(one_case(plugin, n, Path(tmp) / f"{plugin}-{n}-{r}"))
    rows, goals = [], []
    for plugin in args.plugins:
        med = {n: statistics.median(s["samples_per_s"] for s in samples[(plugin, n)]) for n in (1, 2)}
        low = {n: min(s["samples_per_s"] for s in samples[(plugin, n)]) for n in (1, 2)}
        ratio = med[2] / med[1]
        rows.append({"plugin": plugin, "median_1": med[1], "median_2": med[2], "min_1": low[1], "min_2": low[2],
                     "ratio": ratio, "runs": {str(n): samples[(plugin, n)] for n in (1, 2)}})  # fmt: skip
        goal = {"goal": f"{plugin}: 2 processes x 1 thread keep >= {TARGET}x the samples/s of 1 process x 2 threads",
                "ratio": round(ratio, 3), "target": TARGET, "met": ratio >= TARGET}  # fmt: skip
        if not goal["met"]:
            goal["reason"] = (
                "per-step collectives (gloo all-reduce) on a shared 2-core machine cost more than the split saves"
            )
        goals.append(goal)
    print(
        f"{'plugin':<12} {'1 proc x2 thr':>14} {'2 proc x1 thr':>14} {'ratio':>6}  (samples/s, median of {args.repeats})"
    )
    for r in rows:
        print(f"{r['plugin']:<12} {r['median_1']:>14.1f} {r['median_2']:>14.1f} {r['ratio']:>6.2f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "scaling.json").write_text(json.dumps({"threads_total": THREADS_TOTAL, "repeats": args.repeats,
                                                   "goals": goals, "rows": rows}, indent=2) + "\n")  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["median_1"] for r in rows], 0.4, label="1 process x 2 threads")
    ax.bar([i + 0.2 for i in x], [r["median_2"] for r in rows], 0.4, label="2 processes x 1 thread")
    ax.set_xticks(list(x), [r["plugin"] for r in rows])
    ax.set_ylabel("training samples/s")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=100)


if __name__ == "__main__":
    main()
