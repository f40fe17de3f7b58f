"""mlx core: the plugin contract, registry, runner and CLI. Imports nothing heavy."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .config import Section
from .errors import ConfigError, DataError, DeviceError, MlxError, PluginError, RunError, StageFailed, UsageError
from .hookspecs import hookimpl, hookspec
from .info import HARDWARE, STAGES, PluginInfo
from .runs import atomic_dir, atomic_path, atomic_write, atomic_write_json

try:
    __version__ = version("mlx-core")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

#: The plugin API version. Plugins declare the range they support in ``PluginInfo.core_api``.
#: Bump the minor for additions (new hooks, new ctx helpers), the major for breaking changes.
API_VERSION = "1.3"


def __getattr__(name: str):
    # RunContext pulls in rich.progress; listing plugins never needs it, so it loads on first use.
    if name == "RunContext":
        from .context import RunContext

        return RunContext
    if name in ("Predictor", "Request", "Response", "ImageBytes"):  # serving: pydantic only, loaded on use
        from . import serving

        return getattr(serving, name)
    raise AttributeError(f"module 'mlx_core' has no attribute {name!r}")


__all__ = [
    "API_VERSION", "HARDWARE", "STAGES", "ConfigError", "DataError", "DeviceError", "MlxError",
    "ImageBytes", "PluginError", "PluginInfo", "Predictor", "Request", "Response", "RunContext", "RunError", "Section", "StageFailed", "UsageError",
    "__version__", "atomic_dir", "atomic_path", "atomic_write", "atomic_write_json", "hookimpl", "hookspec",
]  # fmt: skip
