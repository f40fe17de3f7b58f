"""``mlx runs ...``: list, show, diff, report, verify, gc and sync runs (a typer sub-app).

Reads ``run.json`` files only (``mlx_core.runsdb``), so it works for runs of plugins that are
not installed here; ``--json`` on every command; ``--runs-dir`` / ``MLX_RUNS_DIR`` as for
``mlx run``. A run is named by its directory, its id or a unique prefix of the id.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import runsdb
from .errors import RunError, UsageError

runs_app = typer.Typer(
    help="Find, compare, report, verify, clean up and sync runs (reads run.json).", no_args_is_help=True
)
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

RunsDir = Annotated[Path, typer.Option("--runs-dir", envvar="MLX_RUNS_DIR", help="Where runs are.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
PluginOpt = Annotated[Optional[str], typer.Option("--plugin", help="Only this plugin's runs.")]


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _duration(seconds: float | None) -> str:
    if not seconds:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.1f}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _stages(stages: dict[str, str]) -> str:
    return " ".join(f"{name[0]}{runsdb.STAGE_MARK.get(status, '?')}" for name, status in stages.items())


@runs_app.command("list")
def runs_list(
    runs_dir: RunsDir = Path("runs"),
    plugin: PluginOpt = None,
    status: Annotated[
        Optional[str], typer.Option("--status", help="completed, failed, interrupted, running, killed or unreadable.")
    ] = None,
    where: Annotated[
        Optional[list[str]],
        typer.Option(
            "--where", help="KEY OP VALUE, e.g. 'val_miou>0.6', 'config.train.epochs>=3' (repeatable: all hold)."
        ),
    ] = None,
    sort: Annotated[
        str, typer.Option("--sort", help="A metric, config.KEY or field; '-' first: descending.")
    ] = "-started",
    limit: Annotated[Optional[int], typer.Option("--limit", help="At most N runs.")] = None,
    as_json: Json = False,
) -> None:
    """One row per run: plugin, id, started, duration, stages, device, headline metrics, parity."""
    entries = runsdb.select(
        runsdb.discover(runs_dir), plugin=plugin, status=status, where=where or [], sort=sort, limit=limit
    )
    if as_json:
        _print_json([e.row for e in entries])
        return
    if not entries:
        err.print(f"no runs under {runs_dir}" + (" match" if (plugin or status or where) else ""), highlight=False)
        return
    table = Table("plugin", "id", "started", "duration", "status", "stages", "device", "metrics", "parity")
    for e in entries:
        r = e.row
        if not e.readable:
            table.add_row(r["plugin"], r["id"], "", "", "[red]unreadable[/]", "", "", r["reason"], "")
            continue
        started = (r.get("started") or "")[:19].replace("T", " ")
        colour = {"completed": "green", "failed": "red", "killed": "red", "interrupted": "yellow"}.get(
            r["status"], "white"
        )
        table.add_row(
            r["plugin"], r["id"], started, _duration(r["duration_s"]), f"[{colour}]{r['status']}[/]", _stages(r["stages"]),
            r.get("device") or "", " ".join(f"{k}={_num(v)}" for k, v in r["headline"].items()), r["parity"],
        )  # fmt: skip
    out.print(table)


@runs_app.command("show")
def runs_show(run: str, runs_dir: RunsDir = Path("runs"), as_json: Json = False) -> None:
    """Config, versions, stages, metrics, records, notes and artifacts (size, sha256) of RUN."""
    e = runsdb.load(run, runs_dir)
    d = e.data or {}
    if as_json:
        _print_json({**d, "path": str(e.path), "status": e.row["status"]})
        return
    out.print(f"[bold]{d.get('plugin')}[/] {d.get('id')}  {e.row['status']}  ({e.path})", highlight=False)
    for key in ("plugin_version", "device", "target", "created", "updated"):
        out.print(f"  {key}: {d.get(key)}", highlight=False)
    out.print(f"  command: {' '.join(map(str, d.get('command') or []))}", highlight=False, markup=False)
    out.print("config:", highlight=False)
    for k, v in {**runsdb.flatten(d.get("config", {})), **runsdb.flatten(d.get("options", {}))}.items():
        out.print(f"  {k} = {json.dumps(v)}", highlight=False, markup=False)
    out.print("versions: " + ", ".join(f"{k} {v}" for k, v in (d.get("versions") or {}).items()), highlight=False)
    table = Table("stage", "status", "seconds", "history rows", "error", title="stages", title_justify="left")
    for name, s in d.get("stages", {}).items():
        table.add_row(name, s.get("status", ""), _num(s.get("duration_s", "")), str(len(s.get("history") or [])),
                      s.get("error") or "")  # fmt: skip
    out.print(table)
    if d.get("metrics"):
        out.print("metrics: " + ", ".join(f"{k}={_num(v)}" for k, v in d["metrics"].items()), highlight=False)
    for k, v in (d.get("records") or {}).items():
        out.print(f"record {k}: {json.dumps(v, default=str)}", highlight=False, markup=False)
    for note in d.get("notes") or []:
        out.print(f"note: {note}", highlight=False, markup=False)
    table = Table("artifact", "stage", "kind", "bytes", "sha256", title="artifacts", title_justify="left")
    for a in d.get("artifacts", []):
        table.add_row(
            str(a.get("path")), str(a.get("stage")), str(a.get("kind")), str(a.get("size")), str(a.get("sha256"))
        )
    out.print(table)


@runs_app.command("diff")
def runs_diff(run_a: str, run_b: str, runs_dir: RunsDir = Path("runs"), as_json: Json = False) -> None:
    """Config keys that differ, metric deltas, library version changes, artifacts that differ."""
    a, b = runsdb.load(run_a, runs_dir), runsdb.load(run_b, runs_dir)
    result = runsdb.diff(a, b)
    if as_json:
        _print_json({"a": str(a.path), "b": str(b.path), **result})
        return
    out.print(f"a: {a.path}\nb: {b.path}", highlight=False)
    titles = {
        "run": "run",
        "config": "config",
        "metrics": "metrics",
        "versions": "versions",
        "artifacts": "artifacts (content now)",
    }
    for section, title in titles.items():
        rows = result[section]
        if not rows:
            out.print(f"{title}: no difference", highlight=False)
            continue
        cols = ["key", "a", "b"] + (["b - a"] if section == "metrics" else [])
        table = Table(*cols, title=title, title_justify="left")
        for r in rows:
            cells = [str(r["key"]), _num(r["a"]), _num(r["b"])]
            if section == "metrics":
                cells.append("" if r["delta"] is None else f"{r['delta']:+.4g}")
            table.add_row(*cells)
        out.print(table)


@runs_app.command("report")
def runs_report(
    runs: Annotated[list[str], typer.Argument(help="Runs to put on the page (curves overlaid).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")] = Path("report.html"),
    runs_dir: RunsDir = Path("runs"),
    as_json: Json = False,
) -> None:
    """Write one static HTML page (no server, no network): curves, metrics, parity, artifacts."""
    from .report import render
    from .runs import atomic_write

    entries = [runsdb.load(r, runs_dir) for r in runs]
    atomic_write(output, render(entries))
    if as_json:
        _print_json({"output": str(output.resolve()), "runs": [str(e.path) for e in entries]})
        return
    print(output.resolve())


@runs_app.command("verify")
def runs_verify(run: str, runs_dir: RunsDir = Path("runs"), as_json: Json = False) -> None:
    """Re-hash every artifact against run.json; a missing or changed file is named, exit 1."""
    e = runsdb.load(run, runs_dir)
    rows = runsdb.verify(e)
    bad = [r for r in rows if r["status"] != "ok"]
    if as_json:
        _print_json({"run": str(e.path), "ok": not bad, "artifacts": rows})
    else:
        for r in rows:
            colour = "green" if r["status"] == "ok" else "red"
            out.print(f"[{colour}]{r['status']:8}[/] {r['path']}  {r['detail']}", highlight=False)
    if bad:
        names = ", ".join(f"{r['path']} ({r['status']})" for r in bad)
        err.print(f"error: {len(bad)} of {len(rows)} artifacts of {e.path} fail verification: {names}",
                  highlight=False, markup=False, soft_wrap=True)  # fmt: skip
        raise typer.Exit(1)
    if not as_json:
        err.print(f"{len(rows)} artifacts match run.json", highlight=False)


@runs_app.command("gc")
def runs_gc(
    keep: Annotated[int, typer.Option("--keep", help="Runs to keep per plugin (the newest).")],
    runs_dir: RunsDir = Path("runs"),
    plugin: PluginOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be deleted.")] = False,
    as_json: Json = False,
) -> None:
    """Delete all but the N newest runs of each plugin; never a run that is running (its lock)."""
    result = runsdb.gc(runsdb.discover(runs_dir), keep, plugin=plugin, dry_run=dry_run)
    if as_json:
        _print_json(result)
    else:
        verb = "would delete" if dry_run else "deleted"
        for p in result["deleted"]:
            out.print(f"{verb} {p}", highlight=False)
        for p in result["running"]:
            out.print(f"kept {p} (running)", highlight=False)
        for p in result["unreadable"]:
            out.print(f"kept {p} (unreadable run.json: see mlx runs list)", highlight=False)
        kept = len(result["kept"]) + len(result["running"]) + len(result["unreadable"])
        out.print(f"{verb} {len(result['deleted'])}, kept {kept}", highlight=False)
    if result["errors"]:
        raise RunError(f"could not delete: {'; '.join(result['errors'])}")


@runs_app.command("sync")
def runs_sync(
    run: str,
    to: Annotated[str, typer.Option("--to", help="Tracker: mlflow[=URI], tensorboard, or any installed tracker.")],
    runs_dir: RunsDir = Path("runs"),
    as_json: Json = False,
) -> None:
    """Replay a finished, failed or interrupted run into a tracker (a second sync adds nothing)."""
    from . import tracking
    from .plugins import Registry
    from .runs import Manifest

    e = runsdb.load(run, runs_dir)
    status = e.row["status"]
    if status == "running":
        raise UsageError(f"run {e.path} is still running; sync it when it has ended")
    name = tracking.sync(to, Manifest(e.path, e.data or {}), status, Registry())
    if as_json:
        _print_json({"run": str(e.path), "tracker": name, "status": status})
        return
    out.print(f"synced {e.path} ({status}) to {name}", highlight=False)
