"""A stage-table plugin whose ``data`` entry names a function that does not exist: it lists as
``ok`` (the table is resolved lazily) and its run fails at that stage with one line."""

from __future__ import annotations

from mlx_core import PluginInfo, hookimpl


@hookimpl
def mlx_plugin():
    return PluginInfo(
        name="bad_table",
        summary="stage table naming a missing function (core test plugin)",
        stages={"data": "mlx_testplugins.tabled_stages:no_such_function"},
        core_api=">=1.2,<2",
        profiler="none",
    )
