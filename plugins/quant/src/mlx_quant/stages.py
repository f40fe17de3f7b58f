"""quant's stage functions (named in its stage table): each run is either a language model
quantized with bitsandbytes (+LoRA), or post-training quantization of another plugin's finished
run (``source.run``); the two paths share the four stages."""

from __future__ import annotations

from typing import Any

from .config import check_model_flags, check_model_path


def data(ctx) -> Any:
    if ctx.config.source.run:
        from .source import load_source

        return load_source(ctx)
    check_model_flags(ctx.config.model)
    check_model_path(ctx.config.model)
    from .data import build_text_data

    return build_text_data(ctx)


def model(ctx, data) -> Any:
    if ctx.config.source.run:
        from .source import source_model

        return source_model(ctx, data)
    from .model import build_model

    return build_model(ctx, data)


def train(ctx, data, model) -> Any:
    if ctx.config.source.run:
        ctx.log("[train] post-training quantization: nothing to train")
        return model
    from .train import train as train_lm

    return train_lm(ctx, data, model)


def export(ctx, data, model) -> Any:
    if ctx.config.source.run:
        from .source import export_source

        return export_source(ctx, data, model)
    from .export import export as export_lm

    return export_lm(ctx, data, model)
