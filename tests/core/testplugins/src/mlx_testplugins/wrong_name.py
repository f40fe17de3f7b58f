"""A plugin whose description names another plugin."""

from mlx_core import PluginInfo, hookimpl


@hookimpl
def mlx_plugin():
    return PluginInfo(name="somebody_else", summary="wrong name", stages=())
