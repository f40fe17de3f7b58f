"""A plugin that runs on CUDA only."""

from mlx_core import PluginInfo, hookimpl


@hookimpl
def mlx_plugin():
    return PluginInfo(name="cuda_only", summary="needs a GPU", stages=(), hardware=("cuda",))
