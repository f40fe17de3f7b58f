"""A cross-cutting test plugin: wraps any plugin's ``mlx_export`` and adds a stamp artifact."""

from __future__ import annotations

from pydantic import Field

from mlx_core import PluginInfo, Section, atomic_write, hookimpl


class StampOptions(Section):
    enabled: bool = Field(False, description="add a STAMP file to the export")
    text: str = Field("stamped", description="what the stamp says")


@hookimpl
def mlx_plugin():
    return PluginInfo(
        name="stamp", summary="adds a stamp to any export (core test wrapper)", stages=(), options=StampOptions
    )


@hookimpl(wrapper=True)
def mlx_export(ctx, model):
    result = yield
    opts = ctx.options("stamp")
    if opts is not None and opts.enabled:
        path = atomic_write(ctx.path("export", "STAMP"), f"{opts.text} {ctx.plugin}\n")
        ctx.add_artifact(path, kind="stamp")
        result = {**result, "stamp": str(path)}
    return result
