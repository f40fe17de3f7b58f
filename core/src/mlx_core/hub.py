"""The model hub: every model entry point the installed plugins publish through ``mlx_models``.

    from mlx_core import hub
    hub.list()                                   # ['deeplabv3_mobilenet_v3_large', ...]
    print(hub.help("deeplabv3_mobilenet_v3_large"))
    model = hub.load("deeplabv3_mobilenet_v3_large", num_classes=21)

The repository's ``hubconf.py`` re-exports the same callables for ``torch.hub.load(checkout,
name, source="local")``.
"""

from __future__ import annotations

import builtins
import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import PluginError, UsageError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    plugin: str
    fn: Callable[..., Any]

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.fn) or ""
        return doc.splitlines()[0] if doc else ""

    @property
    def signature(self) -> str:
        return f"{self.name}{_signature(self.fn)}"


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(fn, eval_str=True)
    except (NameError, TypeError):  # annotations naming heavy types imported lazily
        return inspect.signature(fn)


def entries(registry: Any = None, plugin: str | None = None) -> dict[str, ModelEntry]:
    """Model entry points of the usable plugins (optionally of one plugin)."""
    if registry is None:
        from .plugins import Registry

        registry = Registry()
    if plugin is not None:
        registry.get(plugin)  # unknown or broken plugin: one clear error
    out: dict[str, ModelEntry] = {}
    for plugin_name, publish in registry.model_publishers():
        if plugin is not None and plugin_name != plugin:
            continue
        try:
            published = publish() or {}
        except Exception as exc:  # noqa: BLE001 - one plugin's bug must not hide the others
            raise PluginError(f"plugin {plugin_name!r}: mlx_models() raised {type(exc).__name__}: {exc}") from None
        for name, fn in published.items():
            if name in out:
                raise PluginError(f"model name {name!r} is published by both {out[name].plugin!r} and {plugin_name!r}")
            if not callable(fn):
                raise PluginError(f"plugin {plugin_name!r}: model {name!r} is not callable")
            out[name] = ModelEntry(name, plugin_name, fn)
    return dict(sorted(out.items()))


def _entry(name: str, registry: Any = None) -> ModelEntry:
    found = entries(registry)
    if name not in found:
        close = difflib.get_close_matches(name, builtins.list(found), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"unknown model {name!r}{hint}; available: {', '.join(found) or 'none'}")
    return found[name]


def list(plugin: str | None = None) -> builtins.list[str]:
    """Names of the published models (optionally of one plugin)."""
    return builtins.list(entries(plugin=plugin))


def help(name: str) -> str:
    """The docstring of model ``name``, headed by its signature."""
    e = _entry(name)
    return f"{e.signature}\n\n{inspect.getdoc(e.fn) or '(no docstring)'}"


def load(name: str, **kwargs: Any) -> Any:
    """Build model ``name`` with keyword arguments (unknown ones are a one-line error)."""
    e = _entry(name)
    params = _signature(e.fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        bad = [k for k in kwargs if k not in params]
        if bad:
            raise UsageError(f"model {name!r} takes no argument {bad[0]!r}; it takes: {', '.join(params) or 'none'}")
    return e.fn(**kwargs)
