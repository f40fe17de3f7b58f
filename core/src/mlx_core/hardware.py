"""What this machine has, found without importing torch (``mlx plugins list`` must stay cheap)."""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path


@functools.cache
def gpu_names() -> tuple[str, ...]:
    """Names of the NVIDIA GPUs the driver exposes; empty when there is no usable driver."""
    if os.environ.get("MLX_FAKE_NO_GPU"):
        return ()
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10, check=True,
            ).stdout  # fmt: skip
            return tuple(line.strip() for line in out.splitlines() if line.strip())
        except (OSError, subprocess.SubprocessError):
            return ()
    gpus = Path("/proc/driver/nvidia/gpus")
    return tuple(p.name for p in gpus.iterdir()) if gpus.is_dir() else ()


def has_cuda() -> bool:
    return bool(gpu_names())


def missing_modules(names: tuple[str, ...] | list[str]) -> list[str]:
    """Which of these importable names are not installed (looked up, not imported)."""
    missing = []
    for name in names:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    return missing
