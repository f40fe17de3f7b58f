"""`mlx plugins list` must not import heavy libraries (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["torch", "torchvision", "torchrec", "paddle", "transformers", "tensorflow", "jax", "executorch", "datasets"]

SNIPPET = f"""
import json, sys
from mlx_core.cli import app
try:
    app(["plugins", "list"], standalone_mode=False)
finally:
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
    print("HEAVY=" + json.dumps(heavy), file=sys.stderr)
"""


def heavy_modules_after_list() -> list[str]:
    proc = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stderr.splitlines() if x.startswith("HEAVY="))
    return json.loads(line[len("HEAVY=") :])


def test_plugins_list_imports_no_heavy_library():
    assert heavy_modules_after_list() == []
