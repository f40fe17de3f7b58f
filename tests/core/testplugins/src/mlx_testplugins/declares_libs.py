"""A plugin that names the library it uses in ``requires`` (tomli_w, a core dependency, so always
installed) and keeps the default profiler: ``run.json`` must record tomli_w's version, and
``--profile`` must not reach for torch, which this plugin never uses. Its data stage counts its
invocations through ``ctx.manifest`` (what an earlier invocation of the run recorded)."""

from __future__ import annotations

from mlx_core import PluginInfo, atomic_write, hookimpl

NAME = "declares_libs"


@hookimpl
def mlx_plugin():
    return PluginInfo(
        name=NAME, summary="declares its libraries (core test plugin)", stages=("data",), requires=("tomli_w",)
    )


@hookimpl
def mlx_data(ctx):
    if ctx.plugin != NAME:
        return None
    import tomli_w

    # ctx.manifest holds what earlier invocations of this run recorded (--from)
    before = ctx.manifest.data.get("records", {}).get("data_invocations", 0)
    ctx.record("data_invocations", before + 1)
    path = atomic_write(ctx.path("data", "table.toml"), tomli_w.dumps({"rows": 3}))
    ctx.add_artifact(path, kind="data")
    return {"rows": 3}
