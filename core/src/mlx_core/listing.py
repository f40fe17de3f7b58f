"""``mlx plugins list`` rendering, kept free of typer so the fast entry path can use it.

A listing whose inputs are unchanged is answered from :mod:`mlx_core.plugin_cache` (rows and the
rendered table) without importing pluggy, pydantic, rich or any plugin.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing stays off the hot path
if TYPE_CHECKING:
    from typing import Any


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output (CI logs, `| less`) gets wide tables instead of rich's 80-column default.
    return Console(stderr=stderr, width=None if stream.isatty() else 160)


def list_plugins(as_json: bool = False) -> None:
    """Print the installed plugins with their status (ok, broken, unavailable here, disabled)."""
    from . import plugin_cache

    terminal = plugin_cache.stdout_is_terminal()
    view = plugin_cache.render_key(terminal)
    cached = plugin_cache.load()
    if cached is not None and (as_json or view in cached["rendered"]):
        sys.stdout.write(_json(cached["rows"]) if as_json else cached["rendered"][view])
        return
    cache_key = plugin_cache.key()  # read before loading: a change while loading is a later miss
    from .plugins import Registry

    records = Registry().listed()
    rows = [r.as_dict() for r in records]
    text = _json(rows) if as_json else render(rows)
    sys.stdout.write(text)
    plugin_cache.store(cache_key, records, rows, {} if as_json else {view: text})


def _json(rows: list[dict[str, Any]]) -> str:
    import json  # only here: json imports re, which --version and the cached table do without

    return json.dumps(rows, indent=2) + "\n"


def render(rows: list[dict[str, Any]]) -> str:
    """The table as the console would print it (colours and width of the real stdout)."""
    import io

    out = console()
    if not rows:
        return "no plugins installed (entry-point group 'mlx'); try: mlx plugins install segmentation\n"
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "version", "stages", "hardware", "status")
    colour = {"ok": "green", "broken": "red", "conflict": "red", "unavailable here": "yellow", "disabled": "dim"}
    for r in rows:
        status = r["status"] + (f": {r['reason']}" if r["reason"] else "")
        stages = ", ".join(r["stages"] + (["predict"] if r["predict"] else []))
        table.add_row(
            r["name"],
            r["version"] or "?",
            stages,
            ", ".join(r["hardware"]),
            f"[{colour.get(r['status'], 'white')}]{status}[/]",
        )
    # rendered into a string with the real console's settings, so that it can be cached
    buf = Console(
        file=io.StringIO(),
        width=out.width,
        height=out.height,
        color_system=out.color_system,  # type: ignore[arg-type]
        force_terminal=out.is_terminal,
        no_color=out.no_color,
        legacy_windows=False,
    )
    buf.print(table)
    return buf.file.getvalue()  # type: ignore[attr-defined]


def version_line() -> str:
    from . import API_VERSION, __version__

    return f"mlx-core {__version__} (plugin API {API_VERSION})"
