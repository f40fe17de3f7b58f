"""Run observers (mlx_core.observers): the seam trackers and sweeps attach to."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlx_core.errors import MlxError
from mlx_core.observers import SafeObserver
from mlx_core.plugins import Registry
from mlx_core.runner import run


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def start(self, manifest) -> None:
        self.events.append(("start", manifest.data["plugin"]))

    def metrics(self, stage, metrics, step) -> None:
        self.events.append(("metrics", stage, dict(metrics), step))

    def end(self, manifest, status) -> None:
        self.events.append(("end", status))


def test_observer_hears_start_every_logged_row_and_the_end(tmp_path: Path) -> None:
    rec = Recorder()
    run(Registry(), "linreg", "train", runs_dir=tmp_path, overrides=["train.epochs=30"], observers=[rec])
    assert rec.events[0] == ("start", "linreg") and rec.events[-1] == ("end", "completed")
    stepped = [e for e in rec.events if e[0] == "metrics" and e[3] is not None]
    assert [e[3] for e in stepped] == [10, 20, 30], rec.events
    assert all(e[1] == "train" and set(e[2]) == {"train_mse"} for e in stepped)


def test_observer_hears_a_failed_run_end_as_failed(tmp_path: Path) -> None:
    rec = Recorder()
    with pytest.raises(MlxError):
        run(
            Registry(),
            "linreg",
            "train",
            runs_dir=tmp_path,
            overrides=["data.path=/nonexistent/x.csv"],
            observers=[rec],
        )
    assert rec.events[-1] == ("end", "failed"), rec.events


def test_safe_observer_warns_once_and_swallows() -> None:
    class Broken:
        def start(self, manifest):
            raise ConnectionError("tracking server at 127.0.0.1:9 refused\nmore")

        def metrics(self, stage, metrics, step):
            raise AssertionError("never called after the first failure")

        def end(self, manifest, status):
            raise AssertionError("never called after the first failure")

    warnings: list[str] = []
    safe = SafeObserver(Broken(), "mlflow", warnings.append)
    safe.start(None)
    safe.metrics("train", {"loss": 1.0}, 0)
    safe.end(None, "completed")
    assert warnings == [
        "warning: tracker mlflow stopped (ConnectionError: tracking server at 127.0.0.1:9 refused); the run goes on"
    ]
