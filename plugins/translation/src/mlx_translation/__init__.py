"""mlx translation plugin: the Hugging Face opus_books EN->FR T5 workflow as mlx stages.

The description only: its stage table names the stages in ``data``, ``model``, ``train``,
``export`` and ``predict``, which the core imports when a run reaches them (each first sets the
offline switches), so listing plugins never imports torch or transformers.
"""

from __future__ import annotations

import os

from mlx_core import PluginInfo, hookimpl

from .config import TranslationConfig

NAME = "translation"

# Nothing may be downloaded: every model, tokenizer and dataset comes from a local path.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def offline() -> None:
    """Set the offline switches before transformers/datasets/huggingface_hub are first imported,
    and silence the libraries' own progress bars (the run has its own)."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


@hookimpl
def mlx_plugin():
    return PluginInfo(
        name=NAME,
        summary="T5 translation (opus_books shape): datasets + Seq2SeqTrainer + SacreBLEU, save_pretrained and torch.export",
        stages={
            "data": "mlx_translation.data:build",
            "model": "mlx_translation.model:build",
            "train": "mlx_translation.train:run",
            "export": "mlx_translation.export:run",
            "predict": "mlx_translation.predict:run",
            "serve": "mlx_translation.serve:serve",
        },
        hardware=("cpu", "cuda"),
        config=TranslationConfig,
        requires=("torch", "transformers", "datasets", "tokenizers", "sacrebleu"),
        profiler="torch",
        distribute="hf-trainer",  # Seq2SeqTrainer's DDP from torchrun's environment
        core_api=">=1.3,<2",  # stage table, serve, distribute
    )
