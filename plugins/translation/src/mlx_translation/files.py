"""File helpers: atomic folders (the core's ``atomic_dir``: ``save_pretrained`` writes many files, so
the whole folder is renamed into place) and quiet library output."""

from __future__ import annotations

from mlx_core import atomic_dir

__all__ = ["atomic_dir", "quiet_transformers"]


def quiet_transformers() -> None:
    """No library progress bars or advisory warnings in the run's output (the run has its own)."""
    from transformers.utils import logging as tlog

    tlog.disable_progress_bar()
    tlog.set_verbosity_error()
    try:  # save_pretrained/from_pretrained shard bars come from huggingface_hub's tqdm
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass
