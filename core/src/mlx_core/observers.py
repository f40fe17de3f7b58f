"""Run observers: what trackers (MLflow, TensorBoard) and sweeps (Optuna pruning) attach to a run.

An observer sees a run start, every ``ctx.log_metrics`` call with its step, and the run's end
with its status. The runner owns the list (``run(..., observers=[...])``); the context fans
``log_metrics`` out to it after the manifest has the row, so ``run.json`` is always at least as
complete as any tracker.

Errors: an observer that raises an ``MlxError`` subclass on purpose (a sweep's ``Pruned``)
stops the stage like any user-facing error. Trackers must never fail a run: wrap them in
``SafeObserver``, which turns any exception into one warning line (once per observer) and
keeps the run going.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class RunObserver(Protocol):
    """The three moments of a run an observer hears about (all optional to act on)."""

    def start(self, manifest: Any) -> None:
        """The run (or a ``--from`` continuation of it) begins; ``manifest.data`` holds its config."""

    def metrics(self, stage: str, metrics: dict[str, Any], step: int | None) -> None:
        """``ctx.log_metrics`` was called in ``stage`` (``step`` is ``None`` for summary values)."""

    def end(self, manifest: Any, status: str) -> None:
        """The run ended: ``completed``, ``failed``, ``interrupted`` (or an observer's own status)."""


class SafeObserver:
    """Wraps an observer so that its failures are a single warning, never the run's failure."""

    def __init__(self, inner: RunObserver, name: str, warn: Callable[[str], None]) -> None:
        self.inner, self.name, self._warn, self.failed = inner, name, warn, False

    def _call(self, method: str, *args: Any) -> None:
        if self.failed:
            return
        try:
            getattr(self.inner, method)(*args)
        except Exception as exc:  # noqa: BLE001 - a tracker's failure must never reach the stage
            self.failed = True
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            self._warn(f"warning: tracker {self.name} stopped ({type(exc).__name__}: {first}); the run goes on")

    def start(self, manifest: Any) -> None:
        self._call("start", manifest)

    def metrics(self, stage: str, metrics: dict[str, Any], step: int | None) -> None:
        self._call("metrics", stage, metrics, step)

    def end(self, manifest: Any, status: str) -> None:
        self._call("end", manifest, status)
