"""Core benchmark (issue 20, goal 6): wall time of `mlx plugins list` and `mlx --version` against
`python -c pass`, with every plugin installed.

Goals: `mlx plugins list` <= 4x `python -c pass` (answered from the plugin cache, see
mlx_core/plugin_cache.py), `mlx --version` <= 2x; also (issue 3) the uncached listing (every
plugin imported, `MLX_PLUGIN_CACHE=0`) < 0.10x `python -c "import torch"`. Cases run interleaved
(one of each per round), median and min of the repeats. Prints a table, writes
benchmarks/results/core.json and core.png.

    python benchmarks/core.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from goals import goal

RESULTS = Path(__file__).parent / "results"


def walls(cases: dict[str, tuple[list[str], dict[str, str]]], repeat: int, slow: set[str]) -> dict[str, list[float]]:
    """Round-robin timing: every round runs each command once, so that a change in machine load
    (other jobs on a shared box) hits all commands alike instead of skewing the ratio. ``slow``
    cases (seconds each) run in the first third of the rounds only, to keep the run short."""
    for cmd, env in cases.values():  # warm the file cache, the .pyc files and the plugin cache
        subprocess.run(cmd, capture_output=True, env=env, check=True)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for i in range(repeat):
        for name, (cmd, env) in cases.items():
            if name in slow and i >= max(3, repeat // 3):
                continue
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, env=env, check=True)
            times[name].append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    # bytecode is written and read (an empty PYTHONDONTWRITEBYTECODE: any non-empty value, even
    # "0", turns writing off), as on a user's machine; the plugin cache lives in a fresh folder
    cache = tempfile.mkdtemp(prefix="mlx-bench-cache-")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "MLX_LOAD_PLUGINS")}
    env["MLX_CACHE_DIR"] = cache
    cold = {**env, "MLX_PLUGIN_CACHE": "0"}
    script = Path(sys.executable).with_name("mlx")  # the console script users run
    mlx = [str(script)] if script.exists() else [sys.executable, "-m", "mlx_core"]
    listed = json.loads(
        subprocess.run([*mlx, "plugins", "list", "--json"], capture_output=True, text=True, env=env, check=True).stdout
    )
    time.sleep(2.1)  # files written in the last 2 s are not trusted by the cache (see plugin_cache)
    cases = {
        "python -c pass": ([sys.executable, "-c", "pass"], env),
        "mlx --version": ([*mlx, "--version"], env),
        "mlx plugins list": ([*mlx, "plugins", "list"], env),
        "mlx plugins list --json": ([*mlx, "plugins", "list", "--json"], env),
        "mlx plugins list (no cache)": ([*mlx, "plugins", "list"], cold),
    }
    has_torch = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0
    if has_torch:
        cases['python -c "import torch"'] = ([sys.executable, "-c", "import torch"], env)
    load_before = os.getloadavg()[0]
    rows = {}
    for name, t in walls(cases, args.repeat, slow={'python -c "import torch"', "mlx plugins list (no cache)"}).items():
        rows[name] = {"median_s": statistics.median(t), "min_s": min(t), "runs": len(t)}
    cached_files = sorted(p.name for p in Path(cache).iterdir())

    def ratio(a: str, b: str) -> float:
        return rows[a]["median_s"] / rows[b]["median_s"]

    plugins = [r["name"] for r in listed]
    domain = {"custom_ops", "multimodal", "quant", "recsys", "segmentation", "translation"}
    missing = sorted(domain - set(plugins))
    why_missing = f"; plugins not installed: {missing}" if missing else ""
    goals = [
        goal(
            "core: `mlx plugins list` (all six plugins installed) / `python -c pass`",
            ratio("mlx plugins list", "python -c pass"),
            "<= 4",
            reason="listing slower than 4 bare interpreter starts" + why_missing,
            min_ratio=rows["mlx plugins list"]["min_s"] / rows["python -c pass"]["min_s"],
        ),
        goal(
            "core: `mlx --version` / `python -c pass`",
            ratio("mlx --version", "python -c pass"),
            "<= 2",
            reason="slower than 2 bare interpreter starts",
            min_ratio=rows["mlx --version"]["min_s"] / rows["python -c pass"]["min_s"],
        ),
        goal(
            'core: uncached `mlx plugins list` / `python -c "import torch"` (issue 3)',
            ratio("mlx plugins list (no cache)", 'python -c "import torch"') if has_torch else None,
            "< 0.10",
            reason="importing every plugin's top-level module (pydantic configs, pluggy) costs more than a tenth of torch"
            if has_torch
            else "torch not installed",
        ),
    ]
    result = {
        "benchmark": "core",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1min": [load_before, os.getloadavg()[0]],
        },
        "plugins_installed": plugins,
        "cache_files": cached_files,
        "cases": rows,
        "goals": goals,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "core.json").write_text(json.dumps(result, indent=2) + "\n")

    table = Table(
        "command",
        "median s",
        "min s",
        "x python -c pass",
        title=f"core: {len(listed)} plugins installed",
        title_justify="left",
    )
    for name, r in rows.items():
        table.add_row(name, f"{r['median_s']:.3f}", f"{r['min_s']:.3f}", f"{ratio(name, 'python -c pass'):.2f}")
    Console().print(table)
    for g in goals:
        print(f"{g['goal']}: {g['ratio']} (target {g['target']}) {'met' if g['met'] else 'NOT met: ' + g['reason']}")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(8, 3.2))
    names = list(rows)
    ax.barh(names, [rows[n]["median_s"] for n in names], color="#2a7")
    ax.set_xscale("log")
    ax.set_xlabel("median wall time, s (fresh interpreter, log scale)")
    ax.set_title("mlx start-up: cached listing and --version vs python -c pass")
    fig.tight_layout()
    fig.savefig(RESULTS / "core.png", dpi=120)


if __name__ == "__main__":
    main()
