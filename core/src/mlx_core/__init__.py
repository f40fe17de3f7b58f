"""mlx core: the plugin contract, registry, runner and CLI. Imports nothing heavy.

Every public name is resolved on first use (PEP 562 ``__getattr__``): ``mlx --version`` and a
cached ``mlx plugins list`` import this package but need none of pydantic, pluggy or rich, and
``from mlx_core import PluginInfo, hookimpl`` still works as before (see benchmarks/core.py).
"""

from __future__ import annotations

import importlib

# not ``from typing import TYPE_CHECKING``: importing typing costs a third of a bare interpreter start
TYPE_CHECKING = False

#: The plugin API version. Plugins declare the range they support in ``PluginInfo.core_api``.
#: Bump the minor for additions (new hooks, new ctx helpers), the major for breaking changes.
API_VERSION = "1.3"

#: public name -> the submodule that defines it
_LAZY: dict[str, str] = {
    "Section": "config",
    **dict.fromkeys(
        ("ConfigError", "DataError", "DeviceError", "MlxError", "PluginError", "RunError", "StageFailed", "UsageError"),
        "errors",
    ),
    "hookimpl": "hookspecs",
    "hookspec": "hookspecs",
    "HARDWARE": "info",
    "STAGES": "info",
    "PluginInfo": "info",
    "RunContext": "context",
    **dict.fromkeys(("Predictor", "Request", "Response", "ImageBytes"), "serving"),  # pydantic only
    **dict.fromkeys(("atomic_dir", "atomic_path", "atomic_write", "atomic_write_json"), "runs"),
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from typing import Any

    from .config import Section
    from .context import RunContext
    from .errors import ConfigError, DataError, DeviceError, MlxError, PluginError, RunError, StageFailed, UsageError
    from .hookspecs import hookimpl, hookspec
    from .info import HARDWARE, STAGES, PluginInfo
    from .runs import atomic_dir, atomic_path, atomic_write, atomic_write_json
    from .serving import ImageBytes, Predictor, Request, Response

    __version__: str


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from .distributions import installed_version

        value: Any = installed_version("mlx-core") or "0.0.0+unknown"  # unknown: a source tree, not installed
    elif name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif not name.startswith("__"):
        try:  # ``import mlx_core; mlx_core.runs.X`` worked when everything was imported eagerly
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'mlx_core' has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module 'mlx_core' has no attribute {name!r}")
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "API_VERSION", "HARDWARE", "STAGES", "ConfigError", "DataError", "DeviceError", "ImageBytes", "MlxError",
    "PluginError", "PluginInfo", "Predictor", "Request", "Response", "RunContext", "RunError", "Section",
    "StageFailed", "UsageError",
    "__version__", "atomic_dir", "atomic_path", "atomic_write", "atomic_write_json", "hookimpl", "hookspec",
]  # fmt: skip
