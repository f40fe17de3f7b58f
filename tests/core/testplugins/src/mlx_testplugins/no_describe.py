"""A plugin with a stage but no mlx_plugin()."""

from mlx_core import hookimpl


@hookimpl
def mlx_data(ctx):
    return None
