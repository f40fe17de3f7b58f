"""mlx quant plugin: 8-bit / 4-bit Hugging Face models through transformers' BitsAndBytesConfig,
and post-training quantization (torchao int8, PT2E static int8 -> ExecuTorch) of any plugin's
torch model, either from a finished run (``--set source.run=runs/<plugin>/<run>``) or added to
another plugin's export (``--set quant.scheme=int8_static``) through a hook wrapper.

Only the hookimpls live here; torch, transformers, bitsandbytes, torchao and executorch are
imported inside the stage functions so that ``mlx plugins list`` stays fast.
"""

from __future__ import annotations

from mlx_core import PluginInfo, hookimpl

from .config import QuantConfig, QuantOptions, check_model_flags, check_model_path

NAME = "quant"


@hookimpl
def mlx_plugin():
    return PluginInfo(
        name=NAME,
        summary="8-bit/4-bit LMs with bitsandbytes (+LoRA) and int8 post-training quantization of any plugin's model",
        stages=("data", "model", "train", "export"),
        hardware=("cpu", "cuda"),
        config=QuantConfig,
        options=QuantOptions,
        requires=("torch", "transformers", "accelerate", "bitsandbytes", "peft", "torchao", "executorch", "matplotlib"),
        profiler="torch",
        core_api=">=1.2,<2",  # mlx_core.jsonl (1.2), ctx.atomic_dir (1.1)
    )


@hookimpl
def mlx_data(ctx):
    if ctx.plugin != NAME:
        return None
    if ctx.config.source.run:
        from .source import load_source

        return load_source(ctx)
    check_model_flags(ctx.config.model)
    check_model_path(ctx.config.model)
    from .data import build_text_data

    return build_text_data(ctx)


@hookimpl
def mlx_model(ctx, data):
    if ctx.plugin != NAME:
        return None
    if ctx.config.source.run:
        from .source import source_model

        return source_model(ctx, data)
    from .model import build_model

    return build_model(ctx, data)


@hookimpl
def mlx_train(ctx, data, model):
    if ctx.plugin != NAME:
        return None
    if ctx.config.source.run:
        ctx.log("[train] post-training quantization: nothing to train")
        return model
    from .train import train

    return train(ctx, data, model)


@hookimpl
def mlx_export(ctx, data, model):
    if ctx.plugin != NAME:
        return None
    if ctx.config.source.run:
        from .source import export_source

        return export_source(ctx, data, model)
    from .export import export

    return export(ctx, data, model)


@hookimpl(wrapper=True, specname="mlx_export")
def quantize_other_export(ctx, data, model):
    """Cross-cutting: after another plugin's export, add a post-training quantized artifact when
    the user asked for one (``--set quant.scheme=int8_static``); see ``mlx_quant.ptq``."""
    result = yield  # the domain plugin's own export runs here
    opts = ctx.options(NAME)
    if ctx.plugin == NAME or opts is None or opts.scheme == "none" or model is None:
        return result
    from .ptq import quantize_into_export

    info = quantize_into_export(ctx, data, model, opts)
    if isinstance(result, dict):
        result = {**result, "quant": info}
    return result
