"""mlx quant plugin: 8-bit / 4-bit Hugging Face models through transformers' BitsAndBytesConfig,
and post-training quantization (torchao int8, PT2E static int8 -> ExecuTorch) of any plugin's
torch model, either from a finished run (``--set source.run=runs/<plugin>/<run>``) or added to
another plugin's export (``--set quant.scheme=int8_static``) through a hook wrapper.

Here: the description (its stage table names ``mlx_quant.stages``) and the export wrapper;
torch, transformers, bitsandbytes, torchao and executorch are imported inside the stage
functions so that ``mlx plugins list`` stays fast.
"""

from __future__ import annotations

from mlx_core import PluginInfo, hookimpl

from .config import QuantConfig, QuantOptions

NAME = "quant"


@hookimpl
def mlx_plugin():
    return PluginInfo(
        name=NAME,
        summary="8-bit/4-bit LMs with bitsandbytes (+LoRA) and int8 post-training quantization of any plugin's model",
        stages={
            **{stage: f"mlx_quant.stages:{stage}" for stage in ("data", "model", "train", "export")},
            "predict": "mlx_quant.predict:run",
            "serve": "mlx_quant.serve:serve",
        },
        hardware=("cpu", "cuda"),
        config=QuantConfig,
        options=QuantOptions,
        requires=("torch", "transformers", "accelerate", "bitsandbytes", "peft", "torchao", "executorch", "matplotlib"),
        profiler="torch",
        distribute="torch-ddp",  # LoRA on mlx_torch.fit (DDP over the adapters, gloo on the CPU)
        core_api=">=1.3,<2",  # stage table, ctx.examples, serve, distribute
    )


@hookimpl(wrapper=True)
def mlx_export(ctx, data, model):
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
