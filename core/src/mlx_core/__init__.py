"""mlx core: the plugin contract, registry, runner and CLI. Imports nothing heavy."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .config import Section
from .context import RunContext
from .errors import ConfigError, DataError, DeviceError, MlxError, PluginError, RunError, StageFailed, UsageError
from .hookspecs import hookimpl, hookspec
from .info import HARDWARE, STAGES, PluginInfo
from .runs import atomic_path, atomic_write, atomic_write_json

try:
    __version__ = version("mlx-core")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

#: The plugin API version. Plugins declare the range they support in ``PluginInfo.core_api``.
#: Bump the minor for additions (new hooks, new ctx helpers), the major for breaking changes.
API_VERSION = "1.0"

__all__ = [
    "API_VERSION", "HARDWARE", "STAGES", "ConfigError", "DataError", "DeviceError", "MlxError",
    "PluginError", "PluginInfo", "RunContext", "RunError", "Section", "StageFailed", "UsageError",
    "__version__", "atomic_path", "atomic_write", "atomic_write_json", "hookimpl", "hookspec",
]  # fmt: skip
