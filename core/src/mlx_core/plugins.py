"""Plugin discovery: the ``mlx`` entry-point group, validated and never fatal.

Every plugin, built-in or third-party, is a module named by an entry point in the ``mlx``
group. Loading one can fail in many ways; each failure is recorded on its ``PluginRecord``
(status ``broken`` with the reason) and the plugin is unregistered, so one bad plugin never
takes the CLI down. Environment:

- ``MLX_LOAD_PLUGINS=a,b``: load only these plugins (empty: none); a name no entry point has
  is warned about on stderr.
- ``MLX_TRACE_PLUGINS=1``: log every hook call and the implementations it reached (``0``,
  ``false``, ``no``, ``off`` or empty: no tracing).

Two distributions registering the same plugin name are both listed as ``conflict`` and neither
is imported: a package must not replace another's plugin unseen.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import inspect
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from . import hookspecs
from .errors import PluginError, UsageError
from .hardware import has_cuda, missing_modules
from .hookspecs import hookimpl
from .info import PluginInfo

GROUP = "mlx"
log = logging.getLogger("mlx.plugins")

OK, BROKEN, UNAVAILABLE, DISABLED, CONFLICT = "ok", "broken", "unavailable here", "disabled", "conflict"
FALSE_WORDS = ("", "0", "false", "no", "off")


@dataclass
class PluginRecord:
    name: str
    status: str
    reason: str = ""
    info: PluginInfo | None = None
    module: Any = None
    distribution: str | None = None
    version: str | None = None
    location: str | None = None
    entry_point: str | None = None
    hooks: list[str] = field(default_factory=list)
    #: hooks it implements with a plain (non-wrapper) function: the old-style stage hooks
    answering: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.status == OK

    def provides(self, key: str) -> bool:
        """Whether the plugin answers ``key`` (a stage, ``predict`` or ``examples``) for its runs:
        through its stage table or a hook function of its own."""
        return bool(self.info and key in self.info.table) or f"mlx_{key}" in self.answering

    def as_dict(self) -> dict[str, Any]:
        """The row ``mlx plugins list --json`` prints (and its cache stores): every field of the
        description, read generically (a field added to ``PluginInfo`` shows up unasked), then
        the record's own fields."""
        from .plugin_cache import jsonable

        info = self.info
        described = {f.name: None for f in fields(PluginInfo)} | (jsonable(info) if info else {})
        return {
            **described,
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "reason": self.reason,
            "summary": info.summary if info else "",
            "stages": list(info.stages) if info else [],
            "predict": self.provides("predict"),
            "table": dict(info.table) if info else {},
            "hardware": list(info.hardware) if info else [],
            "core_api": info.core_api if info else None,
            "requires": list(info.requires) if info else [],
            "distribution": self.distribution,
            "entry_point": self.entry_point,
            "location": self.location,
        }


def api_version() -> str:
    from . import API_VERSION

    return API_VERSION


def allow_list() -> set[str] | None:
    raw = os.environ.get("MLX_LOAD_PLUGINS")
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


def tracing() -> bool:
    """``MLX_TRACE_PLUGINS`` set to anything but an empty or false word (``0``, ``false``, ...)."""
    return os.environ.get("MLX_TRACE_PLUGINS", "").strip().lower() not in FALSE_WORDS


def _dist_name(ep: md.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist else None


def group_entry_points(eps: list[md.EntryPoint]) -> dict[str, list[md.EntryPoint]]:
    """Entry points by plugin name, one per distribution (the same distribution seen twice on
    the path counts once), names sorted."""
    out: dict[str, list[md.EntryPoint]] = {}
    for ep in sorted(eps, key=lambda e: (e.name, _dist_name(e) or "")):
        same = out.setdefault(ep.name, [])
        if all(_dist_name(other) != _dist_name(ep) for other in same):
            same.append(ep)
    return out


class Registry:
    """The plugin manager and what it learned about every plugin it saw."""

    def __init__(self, load: bool = True) -> None:
        self.pm = pluggy.PluginManager("mlx")
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self._resolved: dict[tuple[str, str], Callable[..., Any]] = {}
        # the core's own implementation of every stage hook: it answers last (trylast), for the
        # plugins that name their stage functions in a table; wrappers still wrap it
        self.pm.register(StageTable(self), name=StageTable.NAME)
        #: plugin name -> one record per distribution, for names two distributions register
        self.conflicts: dict[str, list[PluginRecord]] = {}
        if tracing():
            self.pm.add_hookcall_monitoring(_trace_before, _trace_after)
        if load:
            self.load_entry_points()

    # --- loading ---------------------------------------------------------------------------
    def load_entry_points(self) -> None:
        allowed = allow_list()
        grouped = group_entry_points(list(md.entry_points(group=GROUP)))
        for name, eps in grouped.items():
            if name in self.records:
                continue
            recs = [
                PluginRecord(
                    name=name,
                    status=OK,
                    distribution=_dist_name(ep),
                    version=ep.dist.version if getattr(ep, "dist", None) else None,  # type: ignore[union-attr]
                    entry_point=ep.value,
                )
                for ep in eps
            ]
            if len(recs) > 1:
                self._conflict(name, recs)
                continue
            rec = self.records[name] = recs[0]
            if allowed is not None and name not in allowed:
                rec.status, rec.reason = DISABLED, "not in MLX_LOAD_PLUGINS"
                continue
            try:
                module = eps[0].load()
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                self._fail(rec, f"import failed: {type(exc).__name__}: {exc}")
                continue
            self.register(module, rec)
        unknown = sorted((allowed or set()) - set(grouped))
        if unknown:
            print(
                f"warning: MLX_LOAD_PLUGINS names {', '.join(map(repr, unknown))}, not installed "
                f"(installed: {', '.join(grouped) or 'none'})",
                file=sys.stderr,
            )

    def _conflict(self, name: str, recs: list[PluginRecord]) -> None:
        """Several distributions register ``name``: each is listed, none imported or run."""
        who = ", ".join(f"{r.distribution or '?'} {r.version or '?'} ({r.entry_point})" for r in recs)
        for rec in recs:
            rec.status = CONFLICT
            rec.reason = f"plugin name registered by {len(recs)} distributions: {who}; uninstall all but one"
        self.records[name] = recs[0]
        self.conflicts[name] = recs

    def listed(self) -> list[PluginRecord]:
        """Every record to show, sorted by name; a conflict shows one row per distribution."""
        rows: list[PluginRecord] = []
        for name in sorted(self.records):
            rows.extend(self.conflicts.get(name, [self.records[name]]))
        return rows

    def register(self, module: Any, rec: PluginRecord | None = None) -> PluginRecord:
        """Register a plugin module (entry-point loading and tests go through here)."""
        name = rec.name if rec else getattr(module, "__name__", repr(module))
        rec = rec or PluginRecord(name=name, status=OK)
        self.records[name] = rec
        rec.module = module
        rec.location = getattr(module, "__file__", None)
        try:
            self.pm.register(module, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            return self._fail(rec, f"invalid hook implementation: {exc}")
        callers = self.pm.get_hookcallers(module) or []
        rec.hooks = [h.name for h in callers]
        rec.answering = [
            h.name
            for h in callers
            if any(i.plugin is module and not (i.wrapper or i.hookwrapper) for i in h.get_hookimpls())
        ]
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            return self._fail(rec, f"invalid hook implementation: {exc}")
        self._describe(rec)
        return rec

    def add_hook_module(self, module: Any, name: str) -> bool:
        """Register a module that implements hooks but is no ``mlx`` plugin (a tracker package of
        the ``mlx.trackers`` group): no description, no status. False if ``name`` is taken."""
        if self.pm.has_plugin(name):
            return False
        self.pm.register(module, name=name)
        return True

    def _describe(self, rec: PluginRecord) -> None:
        impls = [i for i in self.pm.hook.mlx_plugin.get_hookimpls() if i.plugin_name == rec.name]
        if not impls:
            self._fail(rec, "does not implement mlx_plugin() (the description hook)")
            return
        try:
            info = impls[0].function()
        except Exception as exc:  # noqa: BLE001
            self._fail(rec, f"mlx_plugin() raised {type(exc).__name__}: {exc}")
            return
        if not isinstance(info, PluginInfo):
            self._fail(rec, f"mlx_plugin() returned {type(info).__name__}, expected mlx_core.PluginInfo")
            return
        problems = info.problems()
        if info.name != rec.name:
            problems.insert(0, f"describes itself as {info.name!r} but its entry point is {rec.name!r}")
        if problems:
            self._fail(rec, "; ".join(problems), info)
            return
        rec.info = info
        rec.version = info.version or rec.version
        missing = [f"mlx_{s}" for s in info.stages if s not in info.table and f"mlx_{s}" not in rec.hooks]
        if missing:
            self._fail(rec, f"declares stages it does not implement: {missing}", info)
            return
        both = [k for k in info.table if f"mlx_{k}" in rec.answering]
        if both:
            self._fail(rec, f"names {both} in its stage table and also implements them as hook functions", info)
            return
        try:
            spec = SpecifierSet(info.core_api)
        except InvalidSpecifier:
            self._fail(rec, f"invalid core_api range {info.core_api!r}", info)
            return
        if Version(api_version()) not in spec:
            from . import __version__

            self._fail(
                rec,
                f"incompatible: built for core API {info.core_api}, installed mlx-core {__version__} provides API {api_version()}",
                info,
            )
            return
        if "cpu" not in info.hardware and not has_cuda():
            rec.status, rec.reason = UNAVAILABLE, f"needs {'/'.join(info.hardware)}; no NVIDIA GPU found"
            return
        gone = missing_modules(info.requires)
        if gone:
            rec.status, rec.reason = UNAVAILABLE, f"missing libraries: {', '.join(gone)}"

    def _fail(self, rec: PluginRecord, reason: str, info: PluginInfo | None = None) -> PluginRecord:
        rec.status, rec.reason, rec.info = BROKEN, " ".join(reason.split()), info or rec.info
        if rec.module is not None and self.pm.is_registered(rec.module):
            self.pm.unregister(rec.module)
        log.debug("plugin %s broken: %s", rec.name, reason)
        return rec

    # --- lookup ----------------------------------------------------------------------------
    def get(self, name: str) -> PluginRecord:
        """The usable plugin ``name``, or a ``UsageError``/``PluginError`` that says why not."""
        rec = self.records.get(name)
        if rec is None:
            installed = sorted(self.records)
            close = difflib.get_close_matches(name, installed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UsageError(f"unknown plugin {name!r}{hint}; installed: {', '.join(installed) or 'none'}")
        if rec.status != OK:
            raise PluginError(f"plugin {name!r} is {rec.status}: {rec.reason}")
        return rec

    # --- calling hooks (the runner, hub and testing kit go through these, never pm.hook) --------
    def call_stage(self, stage: str, **kwargs: Any) -> Any:
        """Call the stage hook ``mlx_<stage>`` (also ``predict``, ``examples``) with the arguments
        its spec names: old-style hook functions, wrappers and the stage table all take part."""
        hook = getattr(self.pm.hook, f"mlx_{stage}")
        accepted = hook.spec.argnames if hook.spec else tuple(kwargs)
        return hook(**{k: v for k, v in kwargs.items() if k in accepted})

    def stage_function(self, name: str, key: str) -> Callable[..., Any] | None:
        """The function plugin ``name``'s stage table names for ``key``, imported on first use
        (``None`` when the table has no such entry). Import failures are one ``PluginError`` line."""
        rec = self.records.get(name)
        if rec is None or rec.info is None or key not in rec.info.table:
            return None
        cached = self._resolved.get((name, key))
        if cached is not None:
            return cached
        target = rec.info.table[key]
        module_name, _, attr = target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:  # noqa: BLE001 - any import failure of a plugin is the plugin's
            first = next((line for line in str(exc).splitlines() if line.strip()), "")
            raise PluginError(
                f"plugin {name!r}: stage table entry {key!r} = {target!r} cannot be loaded: {type(exc).__name__}: {first}"
            ) from None
        if not callable(obj):
            raise PluginError(f"plugin {name!r}: stage table entry {key!r} = {target!r} is not callable")
        self._resolved[(name, key)] = obj
        return obj

    def dispatch(self, key: str, **kwargs: Any) -> Any:
        """Run ``ctx.plugin``'s table function for ``key`` with the arguments it names; ``None``
        when that plugin has no table entry (an old-style hook answers instead)."""
        ctx = kwargs.get("ctx")
        name = getattr(ctx, "plugin", None)
        rec = self.records.get(name) if isinstance(name, str) else None
        if rec is None or not rec.usable:
            return None
        fn = self.stage_function(rec.name, key)
        if fn is None:
            return None
        return fn(**_accepted(fn, kwargs, f"plugin {rec.name!r}: {rec.info.table[key]}"))  # type: ignore[union-attr]

    def publishers(self, hook: str) -> list[tuple[str, Callable[[], Any]]]:
        """``(plugin name, its function)`` for every implementation of a collecting hook
        (``mlx_models``, ``mlx_trackers``), so that one plugin's failure can be told apart."""
        return [(i.plugin_name, i.function) for i in getattr(self.pm.hook, hook).get_hookimpls()]

    def model_publishers(self) -> list[tuple[str, Callable[[], Any]]]:
        """``(plugin name, its mlx_models function)`` for every plugin that publishes models."""
        return self.publishers("mlx_models")

    def answering_impls(self, name: str, stage: str) -> list[Callable[..., Any]]:
        """Plugin ``name``'s own non-wrapper hook functions for ``mlx_<stage>`` (old-style plugins)."""
        hook = getattr(self.pm.hook, f"mlx_{stage}")
        return [i.function for i in hook.get_hookimpls() if i.plugin_name == name and not (i.wrapper or i.hookwrapper)]

    def options_classes(self) -> dict[str, Any]:
        """Options of every usable cross-cutting plugin, by plugin name."""
        return {n: r.info.options for n, r in self.records.items() if r.usable and r.info and r.info.options}

    def usable(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.usable]


def _accepted(fn: Callable[..., Any], offered: dict[str, Any], where: str) -> dict[str, Any]:
    """The keyword arguments ``fn`` names (all, if it takes ``**kwargs``); like pluggy, a function
    may take fewer arguments than the hook offers, never one it does not offer."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(offered)
    unknown = [
        n
        for n, p in params.items()
        if n not in offered and p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if unknown:
        raise PluginError(f"{where} takes {unknown}, which the core does not pass (it passes {sorted(offered)})")
    return {k: v for k, v in offered.items() if k in params}


class StageTable:
    """The core's built-in implementation of each stage hook, registered like any plugin and
    called last (``trylast``): it answers for the runs of plugins that name their stage functions
    in ``PluginInfo(stages={...})`` and returns ``None`` for every other run, so old-style
    plugins (hook functions with a ``ctx.plugin`` guard) answer as before. Wrappers of
    cross-cutting plugins wrap it like any other implementation."""

    NAME = "mlx-core:stage-table"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    @hookimpl(trylast=True)
    def mlx_data(self, ctx: Any) -> Any:
        return self.registry.dispatch("data", ctx=ctx)

    @hookimpl(trylast=True)
    def mlx_model(self, ctx: Any, data: Any) -> Any:
        return self.registry.dispatch("model", ctx=ctx, data=data)

    @hookimpl(trylast=True)
    def mlx_train(self, ctx: Any, data: Any, model: Any) -> Any:
        return self.registry.dispatch("train", ctx=ctx, data=data, model=model)

    @hookimpl(trylast=True)
    def mlx_export(self, ctx: Any, data: Any, model: Any) -> Any:
        return self.registry.dispatch("export", ctx=ctx, data=data, model=model)

    @hookimpl(trylast=True)
    def mlx_predict(self, ctx: Any, inputs: list[str]) -> Any:
        return self.registry.dispatch("predict", ctx=ctx, inputs=inputs)

    @hookimpl(trylast=True)
    def mlx_examples(self, ctx: Any, data: Any, n: int, split: str) -> Any:
        return self.registry.dispatch("examples", ctx=ctx, data=data, n=n, split=split)

    @hookimpl(trylast=True)
    def mlx_serve(self, ctx: Any, format: str | None) -> Any:
        return self.registry.dispatch("serve", ctx=ctx, format=format)


def _trace_before(hook_name: str, hook_impls: list, kwargs: dict) -> None:
    names = [i.plugin_name + (" (wrapper)" if (i.wrapper or i.hookwrapper) else "") for i in hook_impls]
    print(f"mlx trace: {hook_name} -> {', '.join(names) or 'no implementations'}", file=sys.stderr)


def _trace_after(outcome: Any, hook_name: str, hook_impls: list, kwargs: dict) -> None:
    exc = outcome.exception
    result = "raised " + type(exc).__name__ if exc else type(outcome.get_result()).__name__
    print(f"mlx trace: {hook_name} <- {result}", file=sys.stderr)
