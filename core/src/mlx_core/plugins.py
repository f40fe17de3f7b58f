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
import importlib.metadata as md
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from . import hookspecs
from .errors import PluginError, UsageError
from .hardware import has_cuda, missing_modules
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

    @property
    def usable(self) -> bool:
        return self.status == OK

    def as_dict(self) -> dict[str, Any]:
        info = self.info
        return {
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "reason": self.reason,
            "summary": info.summary if info else "",
            "stages": list(info.stages) if info else [],
            "predict": "mlx_predict" in self.hooks,
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
        rec.hooks = [h.name for h in self.pm.get_hookcallers(module) or []]
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            return self._fail(rec, f"invalid hook implementation: {exc}")
        self._describe(rec)
        return rec

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
        missing = [f"mlx_{s}" for s in info.stages if f"mlx_{s}" not in rec.hooks]
        if missing:
            self._fail(rec, f"declares stages it does not implement: {missing}", info)
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

    def options_classes(self) -> dict[str, Any]:
        """Options of every usable cross-cutting plugin, by plugin name."""
        return {n: r.info.options for n, r in self.records.items() if r.usable and r.info and r.info.options}

    def usable(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.usable]


def _trace_before(hook_name: str, hook_impls: list, kwargs: dict) -> None:
    names = [i.plugin_name + (" (wrapper)" if (i.wrapper or i.hookwrapper) else "") for i in hook_impls]
    print(f"mlx trace: {hook_name} -> {', '.join(names) or 'no implementations'}", file=sys.stderr)


def _trace_after(outcome: Any, hook_name: str, hook_impls: list, kwargs: dict) -> None:
    exc = outcome.exception
    result = "raised " + type(exc).__name__ if exc else type(outcome.get_result()).__name__
    print(f"mlx trace: {hook_name} <- {result}", file=sys.stderr)
