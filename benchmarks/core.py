"""Core benchmark: wall time of `mlx plugins list` against `python -c "import torch"`.

Target (issue 3): listing every installed plugin takes under 10% of importing torch.
Prints a table, writes benchmarks/results/core.json and core.png.

    python benchmarks/core.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def walls(cases: dict[str, list[str]], repeat: int) -> dict[str, list[float]]:
    """Round-robin timing: every round runs each command once, so that a change in machine load
    (other jobs on a shared box) hits all commands alike instead of skewing the ratio."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    for cmd in cases.values():  # warm the file cache and .pyc files
        subprocess.run(cmd, capture_output=True, env=env, check=True)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, cmd in cases.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, env=env, check=True)
            times[name].append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    listed = json.loads(
        subprocess.run(
            [sys.executable, "-m", "mlx_core", "plugins", "list", "--json"], capture_output=True, text=True, check=True
        ).stdout
    )
    script = Path(sys.executable).with_name("mlx")  # the console script users run
    mlx = [str(script)] if script.exists() else [sys.executable, "-m", "mlx_core"]
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "mlx plugins list": [*mlx, "plugins", "list"],
        "mlx --version": [*mlx, "--version"],
    }
    has_torch = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0
    if has_torch:
        cases['python -c "import torch"'] = [sys.executable, "-c", "import torch"]
    load_before = os.getloadavg()[0]
    rows = {}
    for name, t in walls(cases, args.repeat).items():
        rows[name] = {"median_s": statistics.median(t), "min_s": min(t), "runs": len(t)}

    ratio = rows["mlx plugins list"]["median_s"] / rows['python -c "import torch"']["median_s"] if has_torch else None
    result = {
        "benchmark": "core",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1min": [load_before, os.getloadavg()[0]],
        },
        "plugins_installed": [r["name"] for r in listed],
        "cases": rows,
        "list_over_import_torch": ratio,
        "target": "< 0.10",
        "met": None if ratio is None else ratio < 0.10,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "core.json").write_text(json.dumps(result, indent=2) + "\n")

    table = Table("command", "median s", "min s", title=f"core: {len(listed)} plugins installed", title_justify="left")
    for name, r in rows.items():
        table.add_row(name, f"{r['median_s']:.3f}", f"{r['min_s']:.3f}")
    Console().print(table)
    print(
        f"mlx plugins list / import torch = {ratio:.3f} (target < 0.10; load avg {load_before:.1f})"
        if ratio is not None
        else "torch not installed: no ratio"
    )

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 3))
    names = list(rows)
    ax.barh(names, [rows[n]["median_s"] for n in names], color=["#999", "#2a7", "#7a2", "#c33"][: len(names)])
    ax.set_xlabel("median wall time, s (fresh interpreter)")
    ax.set_title("mlx plugins list vs import torch")
    fig.tight_layout()
    fig.savefig(RESULTS / "core.png", dpi=120)


if __name__ == "__main__":
    main()
