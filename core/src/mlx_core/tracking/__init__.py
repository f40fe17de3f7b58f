"""Trackers: opt-in observers of a run that send it to MLflow, TensorBoard, W&B, ...

A tracker is a ``RunObserver`` (``mlx_core.observers``) made by a factory that a plugin
publishes through the ``mlx_trackers()`` hook. Tracker packages register a module in the
entry-point group ``mlx.trackers`` (the built-in MLflow and TensorBoard trackers are two such
entry points of mlx-core itself); plugins of the ``mlx`` group may implement the hook too.
Nothing is loaded, imported or sent unless a run asks for a tracker (``--track NAME[=VALUE]``
or ``mlx runs sync``), and only rank 0 of a multi-process run tracks.

Every tracker is wrapped in ``SafeObserver``: its failure is one warning line and the run goes
on. Both the live trackers and ``mlx runs sync`` turn a run's metrics into points by one rule
(``Series``), so a run replayed from ``run.json`` looks the same as one tracked live.
"""

from __future__ import annotations

import importlib.metadata as md
import math
import os
import re
from collections.abc import Callable
from typing import Any

from ..errors import RunError, UsageError
from ..observers import SafeObserver

GROUP = "mlx.trackers"
#: what a tracker's status is called in MLflow-like trackers, by mlx run status
STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED", "killed": "KILLED", "pruned": "KILLED"}
_SPEC = re.compile(r"^([A-Za-z][\w\-]*)(?:=(.*))?$", re.S)

Factory = Callable[[str | None], Any]


def rank_zero() -> bool:
    """True unless the environment says this is a worker other than rank 0 (RANK, LOCAL_RANK)."""
    return all(os.environ.get(var, "").strip() in ("", "0") for var in ("RANK", "LOCAL_RANK"))


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``mlflow`` -> ("mlflow", None); ``mlflow=sqlite:///m.db`` -> ("mlflow", "sqlite:///m.db")."""
    m = _SPEC.match(spec.strip())
    if not m:
        raise UsageError(f"--track {spec!r}: expected NAME or NAME=VALUE, e.g. mlflow=sqlite:///mlflow.db")
    name, value = m.group(1), m.group(2)
    return name, (value if value else None)


def discover(registry: Any = None) -> tuple[dict[str, Factory], dict[str, str]]:
    """Tracker factories by name, and the tracker packages that failed to load (name -> why).

    Loads the ``mlx.trackers`` entry points (sorted by name; the first to publish a name wins),
    then the ``mlx_trackers`` implementations of the registry's plugins."""
    from ..plugins import Registry

    # the tracker packages get a registry of their own: they are not plugins of the `mlx` group
    trackers = Registry(load=False)
    broken: dict[str, str] = {}
    for ep in sorted(md.entry_points(group=GROUP), key=lambda e: e.name):
        try:
            trackers.add_hook_module(ep.load(), ep.name)
        except Exception as exc:  # noqa: BLE001 - one bad tracker package never takes the others down
            broken[ep.name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    publishers = trackers.publishers("mlx_trackers")
    if registry is not None:
        publishers += registry.publishers("mlx_trackers")
    factories: dict[str, Factory] = {}
    for plugin_name, publish in publishers:
        try:
            published = publish()
        except Exception as exc:  # noqa: BLE001
            broken[plugin_name] = f"mlx_trackers() raised {type(exc).__name__}: {exc}".splitlines()[0]
            continue
        if not isinstance(published, dict) or not all(isinstance(k, str) and callable(v) for k, v in published.items()):
            broken[plugin_name] = "mlx_trackers() must return a dict {name: factory}"
            continue
        for name, factory in published.items():
            factories.setdefault(name, factory)
    return factories, broken


def make(spec: str, registry: Any = None) -> tuple[str, Any]:
    """The tracker ``spec`` names, built by its factory (which raises ``UsageError`` for a bad
    value or a missing library, before any run starts)."""
    name, value = parse_spec(spec)
    factories, broken = discover(registry)
    if name not in factories:
        known = ", ".join(sorted(factories)) or "none"
        why = f"; {name} failed to load: {broken[name]}" if name in broken else ""
        raise UsageError(f"unknown tracker {name!r}{why}; installed trackers: {known}")
    return name, factories[name](value)


def observers(specs: list[str], registry: Any, warn: Callable[[str], None]) -> list[SafeObserver]:
    """``SafeObserver``-wrapped trackers for ``--track`` specs (none on ranks other than 0)."""
    if not specs or not rank_zero():
        return []
    return [SafeObserver(tracker, name, warn) for name, tracker in (make(s, registry) for s in specs)]


def sync(spec: str, manifest: Any, status: str, registry: Any = None) -> str:
    """Replay a finished run into a tracker: its ``sync(manifest, status)`` when it has one (the
    built-ins are idempotent), else start / every history row / end. Returns the tracker's name."""
    name, tracker = make(spec, registry)
    try:
        if hasattr(tracker, "sync"):
            tracker.sync(manifest, status)
        else:
            tracker.start(manifest)
            for stage, rows, summary in stage_rows(manifest.data):
                for row in rows:
                    tracker.metrics(stage, {k: v for k, v in row.items() if k != "step"}, row.get("step"))
                tracker.metrics(stage, summary, None)
            tracker.end(manifest, status)
    except Exception as exc:  # noqa: BLE001 - the tracker's own errors: one line, exit 2
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), "")
        raise RunError(f"sync of {manifest.run_dir} to {name} failed: {type(exc).__name__}: {first}") from None
    return name


def stage_rows(data: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    """(stage, history rows, summary metrics) of every stage of a manifest, in run order."""
    out = []
    for stage, rec in data.get("stages", {}).items():
        if isinstance(rec, dict):
            rows = [r for r in rec.get("history") or [] if isinstance(r, dict)]
            out.append((stage, rows, dict(rec.get("metrics") or {})))
    return out


class Series:
    """The (key, step, value) points a tracker logs, by one rule for live runs and replays.

    A value logged with a step is a point at that step. A summary value (no step) of a key that
    already has points is logged only if it differs from the last one (then at that step), so
    that a plugin's final ``val_miou`` does not add a point to the curve it ends; a summary of a
    key without points is a point at step 0. Values that are not numbers are not tracked."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[int, float]] = {}

    def points(self, metrics: dict[str, Any], step: int | None) -> list[tuple[str, int, float]]:
        out = []
        for key, raw in metrics.items():
            if not isinstance(raw, (int, float)):
                continue
            value = float(raw)
            if step is not None:
                point = (key, int(step), value)
            else:
                prev = self.last.get(key)
                if prev is not None and (prev[1] == value or (math.isnan(prev[1]) and math.isnan(value))):
                    continue
                point = (key, prev[0] if prev else 0, value)
            self.last[key] = point[1:]
            out.append(point)
        return out

    def replay(self, data: dict[str, Any]) -> list[tuple[str, int, float]]:
        """Every point of a manifest, in order (and the state to continue it live)."""
        out = []
        for _stage, rows, summary in stage_rows(data):
            for row in rows:
                out += self.points({k: v for k, v in row.items() if k != "step"}, row.get("step"))
            out += self.points(summary, None)
        return out
