"""``--profile``: wrap a stage in the plugin's profiler and save a Chrome trace in the run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from .runs import atomic_path


@contextlib.contextmanager
def profile_stage(kind: str, out: Path, device: str) -> Iterator[None]:
    """Record what runs inside the block into ``out`` (Chrome trace JSON); ``kind`` is
    ``torch``, ``paddle`` or ``none``. Heavy libraries are imported only here."""
    if kind == "torch":
        import torch.profiler as tp

        activities = [tp.ProfilerActivity.CPU]
        if device == "cuda":
            activities.append(tp.ProfilerActivity.CUDA)
        with tp.profile(activities=activities, record_shapes=True) as prof:
            yield
        with atomic_path(out) as tmp:
            prof.export_chrome_trace(str(tmp))
    elif kind == "paddle":
        import paddle.profiler as pp

        targets = [pp.ProfilerTarget.CPU] + ([pp.ProfilerTarget.GPU] if device == "cuda" else [])
        prof = pp.Profiler(targets=targets)
        prof.start()
        try:
            yield
        finally:
            prof.stop()
        with atomic_path(out) as tmp:
            prof.export(str(tmp), format="json")
    else:
        yield
