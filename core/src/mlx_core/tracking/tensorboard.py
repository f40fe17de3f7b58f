"""The built-in TensorBoard tracker (``--track tensorboard``), an ``mlx.trackers`` entry point.

Needs ``pip install 'mlx-core[tensorboard]'``. Writes event files to ``RUN_DIR/tensorboard/``
as metrics are logged (flushed after each call, so ``tensorboard --logdir runs`` shows the
curves while training goes), with tensorboard's own torch-free ``EventFileWriter``. Tags are
the metric names of ``run.json``. Event files are append-only logs by design (TensorBoard reads
them while they grow and tolerates a cut last record), the one thing in a run folder that is
not written to a temporary name first. ``mlx runs sync RUN --to tensorboard`` rewrites the
folder from ``run.json`` (atomically, so a second sync replaces the first).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

from ..hookspecs import hookimpl
from . import Series

FOLDER = "tensorboard"


@hookimpl
def mlx_trackers() -> dict[str, Any]:
    return {"tensorboard": TensorBoardTracker.create}


def _writer(folder: Path) -> Any:
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    return EventFileWriter(str(folder))


def _emit(writer: Any, points: list[tuple[str, int, float]]) -> None:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary

    now = time.time()
    for key, step, value in points:
        summary = Summary(value=[Summary.Value(tag=key, simple_value=value)])
        writer.add_event(Event(wall_time=now, step=step, summary=summary))
    writer.flush()


class TensorBoardTracker:
    """A ``RunObserver`` writing every logged metric as a TensorBoard scalar."""

    def __init__(self) -> None:
        self.writer: Any = None
        self.series = Series()

    @classmethod
    def create(cls, value: str | None) -> TensorBoardTracker:
        from ..errors import UsageError

        if value is not None:
            raise UsageError(f"--track tensorboard={value}: tensorboard takes no value (events go to RUN_DIR/{FOLDER})")
        if importlib.util.find_spec("tensorboard") is None:
            raise UsageError("--track tensorboard needs TensorBoard: pip install 'mlx-core[tensorboard]'")
        return cls()

    def start(self, manifest: Any) -> None:
        self.series.replay(manifest.data)  # a --from continuation goes on where run.json is
        self.writer = _writer(Path(manifest.run_dir) / FOLDER)

    def metrics(self, stage: str, metrics: dict[str, Any], step: int | None) -> None:
        _emit(self.writer, self.series.points(metrics, step))

    def end(self, manifest: Any, status: str) -> None:
        self.writer.close()

    def sync(self, manifest: Any, status: str) -> None:
        from ..runs import atomic_dir

        with atomic_dir(Path(manifest.run_dir) / FOLDER) as tmp:
            writer = _writer(tmp)
            _emit(writer, Series().replay(manifest.data))
            writer.close()
