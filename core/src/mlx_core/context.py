"""``RunContext``: what every stage hook receives as ``ctx``."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .dist import DistInfo
from .errors import RunError
from .runs import Manifest, atomic_dir, atomic_path

T = TypeVar("T")
log = logging.getLogger("mlx")
# ctx.log already prints to the console; libraries that configure the root logger (Paddle does on
# import) must not print every line a second time. --verbose attaches a handler of its own.
log.propagate = False
log.addHandler(logging.NullHandler())


@dataclass
class RunContext:
    """The run a stage belongs to.

    plugin:   name of the plugin whose run this is (domain plugins answer only for their own).
    stage:    the stage being run now (``data``, ``model``, ``train``, ``export`` or ``predict``).
    target:   the last stage this invocation runs.
    config:   the plugin's validated config (an instance of its ``PluginInfo.config``).
    device:   ``"cpu"`` or ``"cuda"`` (``auto`` is resolved before stages run).
    run_dir:  the run directory (absolute); everything the run writes goes below it.
    manifest: the run's ``run.json``; prefer the helper methods below.
    resumed:  true under ``--from``: an earlier invocation already worked in ``run_dir``.
    profile:  true under ``--profile`` (the runner wraps each stage in the plugin's profiler).
    seed:     the run's seed (``config.seed`` when the config has one, else 0).
    registry: the ``Registry`` running this stage (``ctx.examples`` asks it).
    observers: ``mlx_core.observers.RunObserver`` objects that hear every ``log_metrics`` call
              (trackers, a sweep's pruner); the runner fills it.
    dist:     where this process stands in a launched job (``mlx_core.dist.DistInfo``: ``rank``,
              ``world_size``, ``local_rank``, ``local_world_size``, ``node_rank``, ``is_main``,
              ``timeout_s`` for the process group); one process: rank 0 of 1. Only
              ``ctx.dist.is_main`` writes checkpoints and artifacts (other ranks' manifest is
              kept in memory, never written).
    """

    plugin: str
    stage: str
    target: str
    config: Any
    device: str
    run_dir: Path
    manifest: Manifest
    resumed: bool = False
    profile: bool = False
    option_values: dict[str, BaseModel] = field(default_factory=dict)
    console: Console = field(default_factory=lambda: Console(stderr=True))
    progress_bar: Progress | None = None
    output_dir: Path | None = None
    observers: list[Any] = field(default_factory=list)
    registry: Any = None
    dist: DistInfo = field(default_factory=DistInfo.from_env)

    def __post_init__(self) -> None:
        # absolute, like every path ctx.path() returns: p.relative_to(ctx.run_dir) always works
        self.run_dir = Path(self.run_dir).resolve()
        if self.output_dir is not None:
            self.output_dir = Path(self.output_dir).resolve()

    # --- where things go ------------------------------------------------------------------
    @property
    def seed(self) -> int:
        return int(getattr(self.config, "seed", 0) or 0)

    def path(self, *parts: str) -> Path:
        """A path inside the run directory; refuses anything that would escape it."""
        p = (self.run_dir / Path(*parts)).resolve()
        root = self.run_dir.resolve()
        if p != root and root not in p.parents:
            raise RunError(f"path {os.path.join(*parts)!r} escapes the run directory {self.run_dir}")
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def atomic_path(self, *parts: str) -> contextlib.AbstractContextManager[Path]:
        """``with ctx.atomic_path("export", "model.onnx") as tmp:`` write to tmp; renamed on success."""
        return atomic_path(self.path(*parts))

    def atomic_dir(self, *parts: str) -> contextlib.AbstractContextManager[Path]:
        """``with ctx.atomic_dir("export", "tokenizer") as tmp:`` fill the folder tmp; it replaces
        the final folder on success (API 1.1)."""
        return atomic_dir(self.path(*parts))

    def examples(self, data: Any, n: int, split: str) -> list[Any]:
        """Model inputs and targets of this run's data (the cross-plugin contract, API 1.2): asks
        the run's own plugin through ``mlx_examples``; see ``mlx_core.contract``."""
        from .contract import SPLITS, check_examples
        from .errors import PluginError

        if split not in SPLITS:
            raise PluginError(f"examples split {split!r}: expected one of {', '.join(SPLITS)}")
        answer = (
            None
            if self.registry is None
            else self.registry.call_stage("examples", ctx=self, data=data, n=n, split=split)
        )
        if answer is None:
            raise PluginError(
                f"plugin {self.plugin!r} provides no examples of its data (stage table key 'examples', "
                "see mlx_core.contract), so other plugins cannot calibrate or evaluate its model"
            )
        problems = check_examples(answer, n)
        if problems:
            raise PluginError(f"plugin {self.plugin!r}: {problems[0]}")
        return answer

    def options(self, plugin: str) -> BaseModel | None:
        """The options a user gave a cross-cutting plugin for this run (``--set quant.x=...``)."""
        return self.option_values.get(plugin)

    # --- results ----------------------------------------------------------------------------
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Record metrics (floats) of the current stage; with ``step``, also as a history row."""
        self.manifest.log_metrics(self.stage, metrics, step)
        for observer in self.observers:  # after the manifest: run.json is never behind a tracker
            observer.metrics(self.stage, metrics, step)
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
        self.log(f"[{self.stage}]{'' if step is None else f' step {step}'} {shown}")

    def add_artifact(self, path: str | os.PathLike, kind: str = "file", **info: Any) -> dict[str, Any]:
        """Register a finished file (size and sha256 go into the manifest) and return its entry."""
        return self.manifest.add_artifact(self.stage, Path(path), kind=kind, **info)

    def record_ranks(self, rows: list[dict[str, Any]]) -> None:
        """Per-rank facts of a launched run, gathered by the plugin on rank 0 (its framework's
        ``all_gather_object``): one dict per rank with ``rank`` and ``samples_per_s`` (and any
        more, e.g. ``weights_sha256``). ``run.json`` keeps them as ``launch.ranks`` and the sum
        as ``launch.samples_per_s``. Ignored on other ranks (API 1.3)."""
        if not self.dist.is_main:
            return
        rows = sorted((dict(r) for r in rows), key=lambda r: int(r.get("rank", 0)))
        launch = self.manifest.data.setdefault("launch", {"world_size": self.dist.world_size})
        launch["ranks"] = rows
        launch["samples_per_s"] = sum(float(r.get("samples_per_s") or 0) for r in rows)
        self.manifest.save()

    def record(self, key: str, value: Any) -> None:
        """Record a fact about the run in the manifest (e.g. ``trained=False``, a sharding plan)."""
        self.manifest.record(key, value)

    def note(self, text: str) -> None:
        """A human-readable remark in the manifest (and the log), e.g. "model is untrained"."""
        self.manifest.note(text)
        self.log(f"note: {text}")

    # --- talking to the user ----------------------------------------------------------------
    def log(self, message: str) -> None:
        log.info(message)
        self.console.print(message, markup=False, highlight=False, soft_wrap=True)  # grep-able: never wrapped

    @contextlib.contextmanager
    def progress(self, description: str, total: float | None = None) -> Iterator[Any]:
        """A progress bar: ``with ctx.progress("epoch 1", total=n) as advance: advance(1)``."""
        bar = self.progress_bar
        if bar is None:
            yield lambda n=1: None
            return
        task = bar.add_task(description, total=total)
        try:
            yield lambda n=1: bar.advance(task, n)
        finally:
            bar.remove_task(task)

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        with self.progress(description, total) as advance:
            for item in items:
                yield item
                advance(1)


def make_progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
