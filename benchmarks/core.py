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


def wall(cmd: list[str], repeat: int) -> list[float]:
    times = []
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    subprocess.run(cmd, capture_output=True, env=env, check=True)  # warm the file cache and .pyc files
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, env=env, check=True)
        times.append(time.perf_counter() - t0)
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
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "mlx plugins list": [sys.executable, "-m", "mlx_core", "plugins", "list"],
        "mlx --version": [sys.executable, "-m", "mlx_core", "--version"],
    }
    has_torch = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0
    if has_torch:
        cases['python -c "import torch"'] = [sys.executable, "-c", "import torch"]
    rows = {}
    for name, cmd in cases.items():
        t = wall(cmd, args.repeat)
        rows[name] = {"median_s": statistics.median(t), "min_s": min(t), "runs": len(t)}

    ratio = rows["mlx plugins list"]["median_s"] / rows['python -c "import torch"']["median_s"] if has_torch else None
    result = {
        "benchmark": "core",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
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
        f"mlx plugins list / import torch = {ratio:.3f} (target < 0.10)"
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
