"""A plugin built for a core API this core does not provide."""

from mlx_core import PluginInfo, hookimpl


@hookimpl
def mlx_plugin():
    return PluginInfo(name="future_api", summary="needs a newer core", stages=(), core_api=">=2,<3")
