"""recsys reader benchmark: rows/s of one epoch of training batches (KeyedJaggedTensor and dense
tensors, as the train stage consumes them) from a Criteo-layout day file, re-parsing the text
every epoch versus the memory-mapped parse cache (mlx_recsys.cache): the cache's first epoch
includes parsing the file once, a later epoch reads only the arrays.

    .venv/bin/python benchmarks/recsys_reader.py              # 20,000 rows, about two minutes on a loaded 2-core machine
    .venv/bin/python benchmarks/recsys_reader.py --rows 200000 --repeats 5

Writes benchmarks/results/recsys_reader.json and .png. Cases are interleaved (text, cache, text,
cache, ...) and each figure is the median (and min) of the repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
OUT = Path(__file__).parent / "results"
TARGET = 10.0  # a later epoch from the cache at least 10x the rows/s of re-parsing the text


def epoch(spec: dict, batch: int) -> int:
    from mlx_recsys import data as D

    return sum(len(labels) for _, _, labels in D.train_batches(spec, batch))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1024)
    args = ap.parse_args()

    import torchrec  # noqa: F401  (imported before timing: both paths build KeyedJaggedTensors)
    from mlx_recsys import cache as C
    from mlx_recsys import criteo
    from mlx_recsys import data as D
    from mlx_recsys.config import RecsysConfig
    from rich.console import Console
    from rich.table import Table

    from mlx_core import config as cfgmod

    console = Console()
    cfg, _ = cfgmod.resolve(RecsysConfig, overrides=["model.preset=criteo", "model.table_rows=100000"])
    schema = D.Schema.from_config(cfg)
    sch = {"features": schema.features, "columns": schema.columns, "rows": schema.rows, "sep": schema.sep}
    with tempfile.TemporaryDirectory() as tmp:
        day = Path(tmp) / "day_0"
        criteo.write_day_file(day, args.rows, seed=0)
        text_spec = {"path": str(day), "schema": sch, "on_bad_line": "error", "val_fraction": 0.2, "cache": None}
        times: dict[str, list[float]] = {"text epoch": [], "cache first epoch (parse + read)": [],
                                         "cache later epoch": []}  # fmt: skip
        rows = 0
        for r in range(args.repeats):
            t0 = time.perf_counter()
            rows = epoch(text_spec, args.batch)
            times["text epoch"].append(time.perf_counter() - t0)
            root = Path(tmp) / f"cache-{r}"  # a fresh cache each repeat: the first epoch parses
            t0 = time.perf_counter()
            folder, built = C.build(day, schema, "error", root, D.ScanStats())
            assert built
            cached = {**text_spec, "cache": str(folder)}
            assert epoch(cached, args.batch) == rows
            times["cache first epoch (parse + read)"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            epoch(cached, args.batch)
            times["cache later epoch"].append(time.perf_counter() - t0)
        size = day.stat().st_size
    cases = {k: {"median_s": statistics.median(v), "min_s": min(v), "runs": len(v),
                 "rows_per_s": rows / statistics.median(v)} for k, v in times.items()}  # fmt: skip
    ratio = cases["cache later epoch"]["rows_per_s"] / cases["text epoch"]["rows_per_s"]
    goal = {"goal": "a later epoch from the memory-mapped cache vs re-parsing the TSV text (rows/s)",
            "ratio": ratio, "target": f">= {TARGET:g}", "met": ratio >= TARGET}  # fmt: skip
    if not goal["met"]:
        goal["reason"] = "the cache's later epoch is not 10x the text epoch on this machine"
    result = {"benchmark": "recsys_reader",
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_avg_1min": os.getloadavg()[0]},
              "rows": args.rows, "train_rows_per_epoch": rows, "file_bytes": size, "batch": args.batch,
              "cases": cases, "goals": [goal]}  # fmt: skip
    table = Table(title=f"recsys reader: {args.rows} rows ({size / 1e6:.1f} MB day file), {rows} train rows/epoch")
    for c in ("case", "median s", "min s", "rows/s"):
        table.add_column(c, justify="right" if c != "case" else "left")
    for k, v in cases.items():
        table.add_row(k, f"{v['median_s']:.2f}", f"{v['min_s']:.2f}", f"{v['rows_per_s']:,.0f}")
    console.print(table)
    console.print(f"later cache epoch / text epoch: {ratio:.1f}x (target {goal['target']}, met={goal['met']})")
    OUT.mkdir(exist_ok=True)
    (OUT / "recsys_reader.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, OUT / "recsys_reader.png")
    console.print(f"wrote {OUT / 'recsys_reader.json'} and {OUT / 'recsys_reader.png'}")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["cases"])
    vals = [result["cases"][n]["rows_per_s"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh(names, vals, color=["#C44E52", "#DD8452", "#55A868"])
    ax.set_xscale("log")
    ax.set_xlabel("training rows per second (log scale)")
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:,.0f}", va="center", fontsize=8)
    ax.set_title(f"recsys reader, {result['rows']} rows: later epoch {result['goals'][0]['ratio']:.0f}x", fontsize=10)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
