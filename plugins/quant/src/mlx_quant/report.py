"""The post-training quantization chart: size ratio, quality and latency per scheme."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_ptq(report: dict[str, Any], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    schemes = list(report["schemes"])
    rows = report["schemes"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    ratio = [rows[s]["size_ratio"] for s in schemes]
    q = [rows[s]["quality"] for s in schemes]
    agree = [x.get("argmax_agreement", x.get("identical_outputs", float("nan"))) for x in q]

    def pick(row: dict[str, Any], *keys: str) -> float:
        return next((row[k] for k in keys if row.get(k) is not None), float("nan"))

    lat = [pick(rows[s], "executorch_latency_ms", "eager_latency_ms", "generate_ms_per_example") for s in schemes]
    base = [
        pick(rows[s], "fp32_executorch_latency_ms", "fp32_latency_ms", "fp32_generate_ms_per_example") for s in schemes
    ]
    x = range(len(schemes))
    axes[0].bar(x, ratio, color="#4C72B0")
    axes[0].axhline(1.0, color="grey", lw=0.8, ls="--")
    axes[0].set_title("size / fp32 size", fontsize=10)
    axes[1].bar(x, agree, color="#55A868")
    axes[1].set_ylim(0, 1.05)
    axes[1].set_title("agreement with fp32 (argmax / identical outputs)", fontsize=10)
    w = 0.38
    axes[2].bar([i - w / 2 for i in x], base, w, label="fp32", color="#8C8C8C")
    axes[2].bar([i + w / 2 for i in x], lat, w, label="int8", color="#DD8452")
    axes[2].set_title("CPU latency (ms; .pte for int8_static)", fontsize=10)
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.set_xticks(list(x), schemes, rotation=10, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
