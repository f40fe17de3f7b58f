"""mlx plugin ``custom_ops``: involution as composite ops and as C++ custom operators.

Hook implementations only; every heavy import (paddle, torch) happens inside the stage modules,
which are imported inside the hooks.
"""

from __future__ import annotations

from mlx_core import PluginInfo, hookimpl

from .config import CustomOpsConfig, CustomOpsOptions

NAME = "custom_ops"


@hookimpl
def mlx_plugin():
    return PluginInfo(
        name=NAME,
        summary="involution (RedNet) in Paddle and PyTorch: composite vs C++ custom operators; swaps layers in any model",
        stages=("data", "model", "train", "export"),
        hardware=("cpu", "cuda"),
        config=CustomOpsConfig,
        options=CustomOpsOptions,
        core_api=">=1.1,<2",  # ctx.atomic_dir
        requires=("paddle", "torch"),
        profiler="paddle",
    )


@hookimpl
def mlx_data(ctx):
    if ctx.plugin != NAME:
        return None
    from . import data

    return data.build(ctx)


@hookimpl(wrapper=True)
def mlx_model(ctx, data):
    """Builds this plugin's own RedNet, and swaps Involution layers in any plugin's model.

    One wrapper does both because a pluggy plugin has one implementation per hook name: for
    other plugins' runs the inner (domain) implementation answers and this only post-processes.
    """
    model = yield
    if ctx.plugin == NAME and model is None:
        from . import model as model_stage

        model = model_stage.build(ctx, data)
    opts = ctx.options(NAME)
    if model is None or opts is None or opts.involution == "keep":
        return model
    from .swap import swap_involution

    swapped = swap_involution(model, opts.involution)
    ctx.record("custom_ops.involution", {"impl": opts.involution, "layers_swapped": swapped})
    ctx.note(f"custom_ops: {swapped} Involution layer(s) set to impl={opts.involution}")
    return model


@hookimpl
def mlx_train(ctx, data, model):
    if ctx.plugin != NAME:
        return None
    from . import train

    return train.run(ctx, data, model)


@hookimpl
def mlx_export(ctx, data, model):
    if ctx.plugin != NAME:
        return None
    from . import export

    return export.run(ctx, data, model)
