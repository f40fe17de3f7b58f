"""``mlx plugins list`` rendering, kept free of typer so the fast entry path can use it."""

from __future__ import annotations

import json
import sys


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output (CI logs, `| less`) gets wide tables instead of rich's 80-column default.
    return Console(stderr=stderr, width=None if stream.isatty() else 160)


def list_plugins(as_json: bool = False) -> None:
    """Print the installed plugins with their status (ok, broken, unavailable here, disabled)."""
    from .plugins import Registry

    rows = [r.as_dict() for r in Registry().listed()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    out = console()
    if not rows:
        out.print("no plugins installed (entry-point group 'mlx'); try: mlx plugins install segmentation")
        return
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
    out.print(table)


def version_line() -> str:
    from . import API_VERSION, __version__

    return f"mlx-core {__version__} (plugin API {API_VERSION})"
