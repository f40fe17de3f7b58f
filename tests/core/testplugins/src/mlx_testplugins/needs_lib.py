"""A plugin that needs a library that is not installed."""

from mlx_core import PluginInfo, hookimpl


@hookimpl
def mlx_plugin():
    return PluginInfo(
        name="needs_lib", summary="needs a missing library", stages=(), requires=("mlx_no_such_library_xyz",)
    )
