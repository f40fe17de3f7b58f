"""mlx plugin ``custom_ops``: involution as composite ops and as C++ custom operators.

The description (its stage table names the stage functions, imported when a run reaches them)
and the model wrapper; every heavy import (paddle, torch) happens inside the stage modules.
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
        stages={
            "data": "mlx_custom_ops.data:build",
            "model": "mlx_custom_ops.model:build",
            "train": "mlx_custom_ops.train:run",
            "export": "mlx_custom_ops.export:run",
            "examples": "mlx_custom_ops.examples:examples",
            "predict": "mlx_custom_ops.predict:predict",
            "serve": "mlx_custom_ops.serve:serve",
        },
        hardware=("cpu", "cuda"),
        config=CustomOpsConfig,
        options=CustomOpsOptions,
        distribute="torch-ddp",  # torch backend: mlx_torch (ignite.distributed); Paddle refused by check_distribution
        core_api=">=1.3,<2",  # stage table, examples, serve, distribute
        requires=("paddle", "torch"),
        profiler="paddle",
    )


@hookimpl(wrapper=True)
def mlx_model(ctx, data):
    """Cross-cutting: replaces the 3x3 convolutions of any plugin's torch backbone with Involution
    (``--set custom_ops.swap=backbone.3x3``) and swaps the Involution layers of any plugin's model to
    the implementation the user asked for (``--set custom_ops.involution=custom``); this plugin's own RedNet is built by
    its stage table's ``model`` entry, inside this wrapper like any other plugin's model."""
    model = yield
    opts = ctx.options(NAME)
    if model is None or opts is None:
        return model
    if opts.swap == "backbone.3x3":
        from .swap import swap_backbone_convs

        impl = "composite" if opts.involution == "keep" else opts.involution
        names = swap_backbone_convs(model, impl)
        ctx.record("custom_ops.swap", {"target": opts.swap, "impl": impl, "layers_swapped": len(names),
                                       "layers": names})  # fmt: skip
        ctx.note(f"custom_ops: {len(names)} backbone 3x3 convolution(s) replaced by Involution (impl={impl})")
    if opts.involution == "keep":
        return model
    from .swap import swap_involution

    swapped = swap_involution(model, opts.involution)
    ctx.record("custom_ops.involution", {"impl": opts.involution, "layers_swapped": swapped})
    ctx.note(f"custom_ops: {swapped} Involution layer(s) set to impl={opts.involution}")
    return model
