"""A plugin whose hook asks for an argument the spec does not offer."""

from mlx_core import PluginInfo, hookimpl


@hookimpl
def mlx_plugin():
    return PluginInfo(name="bad_signature", summary="wrong hook signature", stages=("data",))


@hookimpl
def mlx_data(ctx, dataset_path):
    return None
