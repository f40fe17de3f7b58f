"""A third-party tracker, registered as any tracker package would be (entry-point group
``mlx.trackers``): it writes every event of a run as a JSON line to ``RUN_DIR/<value or
tracked.jsonl>``. It has no ``sync``, so ``mlx runs sync`` replays through start/metrics/end."""

from __future__ import annotations

import json
from pathlib import Path

from mlx_core import UsageError, hookimpl


class JsonLines:
    def __init__(self, name: str) -> None:
        self.name, self.path = name, None

    def _write(self, obj) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(obj) + "\n")

    def start(self, manifest) -> None:
        self.path = Path(manifest.run_dir) / self.name
        self._write({"event": "start", "id": manifest.data["id"]})

    def metrics(self, stage, metrics, step) -> None:
        self._write({"event": "metrics", "stage": stage, "metrics": metrics, "step": step})

    def end(self, manifest, status) -> None:
        self._write({"event": "end", "status": status})


def make(value):
    if value is not None and "/" in value:
        raise UsageError(f"--track jsonl={value}: expected a file name, not a path")
    return JsonLines(value or "tracked.jsonl")


@hookimpl
def mlx_trackers():
    return {"jsonl": make}
