"""Reading runs back: find run directories, summarise, filter, compare, verify, collect garbage.

Everything here reads ``run.json`` (and, for ``verify``/``diff``, the artifacts) and nothing
else: it works for runs of plugins that are not installed here, and never imports a plugin.
A ``run.json`` that cannot be read is a row with status ``unreadable`` and the reason, never a
crash. Whether a run is still going is the run lock's answer (``flock`` on ``.lock``, the same
lock ``mlx_core.runs.run_lock`` holds), not the manifest's: a run killed by SIGKILL still says
``running`` in its manifest, and is listed as ``killed``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RunError, UsageError
from .info import STAGES
from .runs import LOCK, MANIFEST, run_lock, sha256

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

#: symbols of the per-stage status column of ``mlx runs list``
STAGE_MARK = {"completed": "✓", "failed": "✗", "interrupted": "!", "running": "…", "skipped": "-", "pending": "·"}
#: metric names that make a run's headline, in this order of preference (prefix match)
HEADLINE_PREFIXES = ("val", "eval", "test", "final", "bleu")
HEADLINE_COUNT = 3


def lock_held(run_dir: Path) -> bool:
    """True while a live process holds the run's lock (never creates the lock file)."""
    if fcntl is None:  # pragma: no cover - the exclusive-create fallback: the file is the lock
        return (Path(run_dir) / LOCK).exists()
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the shared lock we may have taken
    return False


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"epochs": 3}}`` -> ``{"train.epochs": 3}`` (lists stay values)."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict) and v:
                out.update(flatten(v, key + "."))
            else:
                out[key] = v
    return out


@dataclass
class RunEntry:
    """One run directory as ``mlx runs`` sees it."""

    path: Path
    data: dict[str, Any] | None = None
    reason: str = ""
    running: bool = False
    row: dict[str, Any] = field(default_factory=dict)

    @property
    def readable(self) -> bool:
        return self.data is not None


def read(run_dir: Path) -> RunEntry:
    """The run at ``run_dir``; an unreadable ``run.json`` gives an entry with ``reason`` set."""
    run_dir = Path(run_dir)
    entry = RunEntry(path=run_dir.resolve(), running=lock_held(run_dir))
    path = run_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        entry.reason = f"no {MANIFEST}"
    except (OSError, UnicodeDecodeError) as exc:
        entry.reason = f"cannot read {MANIFEST}: {exc}"
    except ValueError as exc:
        entry.reason = f"{MANIFEST} is not valid JSON ({exc})"
    else:
        if not isinstance(data, dict) or not isinstance(data.get("stages"), dict) or "plugin" not in data:
            entry.reason = f"{MANIFEST} is not an mlx run manifest"
        else:
            entry.data = data
    entry.row = summarise(entry)
    return entry


def run_status(data: dict[str, Any], running: bool) -> str:
    """completed, failed, interrupted, running (its lock is held: a live process works in it,
    whatever run.json says yet), killed (says running, but no process holds the lock)."""
    if running:
        return "running"
    stages = data.get("stages", {})
    status = data.get("status")
    if status is None:  # manifests written before the run-level status existed
        states = [s.get("status", "pending") for s in stages.values() if isinstance(s, dict)]
        status = next((s for s in ("failed", "interrupted", "running") if s in states), "completed")
    if status == "running" and not running:
        return "killed"
    return str(status)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def headline(data: dict[str, Any]) -> dict[str, Any]:
    """The few metrics that say how a run went: its train stage's validation-like metrics."""
    stages = data.get("stages", {})
    for name in ("train", *reversed(STAGES)):
        metrics = {k: v for k, v in (stages.get(name, {}).get("metrics") or {}).items() if _number(v)}
        if metrics:
            preferred = [k for k in metrics if k.startswith(HEADLINE_PREFIXES)] or list(metrics)
            return {k: metrics[k] for k in preferred[:HEADLINE_COUNT]}
    return {}


def parity(data: dict[str, Any]) -> str:
    """The export checks: ``ok 3/3``, ``FAIL 1/3``, ``failed`` (the export stage), or ``-``."""
    export = data.get("stages", {}).get("export", {})
    checked = [a for a in data.get("artifacts", []) if isinstance(a, dict) and "parity_ok" in a]
    if export.get("status") == "failed":
        return "failed"
    if checked:
        good = sum(1 for a in checked if a["parity_ok"])
        return f"{'ok' if good == len(checked) else 'FAIL'} {good}/{len(checked)}"
    diffs = [
        a["max_abs_diff"] for a in data.get("artifacts", []) if isinstance(a, dict) and _number(a.get("max_abs_diff"))
    ]
    if diffs:
        return f"max diff {max(diffs):.2g}"
    return "-"


def summarise(entry: RunEntry) -> dict[str, Any]:
    """The row ``mlx runs list`` prints (and ``--json`` emits)."""
    plugin_dir, run_id = entry.path.parent.name, entry.path.name
    if entry.data is None:
        return {"plugin": plugin_dir, "id": run_id, "path": str(entry.path), "status": "unreadable",
                "reason": entry.reason, "running": entry.running}  # fmt: skip
    d = entry.data
    stages = {k: v.get("status", "pending") for k, v in d.get("stages", {}).items() if isinstance(v, dict)}
    duration = sum(v.get("duration_s") or 0 for v in d.get("stages", {}).values() if isinstance(v, dict))
    return {
        "plugin": d.get("plugin", plugin_dir),
        "id": d.get("id", run_id),
        "path": str(entry.path),
        "status": run_status(d, entry.running),
        "started": d.get("created"),
        "duration_s": round(duration, 3),
        "stages": stages,
        "target": d.get("target"),
        "device": d.get("device"),
        "headline": headline(d),
        "parity": parity(d),
        "metrics": d.get("metrics", {}),
        "error": next(
            (v.get("error") for v in d.get("stages", {}).values() if isinstance(v, dict) and v.get("error")), None
        ),
        "running": entry.running,
    }


def discover(runs_dir: Path) -> list[RunEntry]:
    """Every run directory ``<runs_dir>/<plugin>/<id>/`` (hidden names are temporary: skipped)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    found = []
    for plugin_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for run_dir in sorted(p for p in plugin_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            found.append(read(run_dir))
    return found


def resolve(ref: str, runs_dir: Path) -> Path:
    """A run named by its directory, its id, or a unique prefix of its id under ``runs_dir``."""
    path = Path(ref)
    if path.is_dir() and ((path / MANIFEST).exists() or (path / LOCK).exists()):
        return path.resolve()
    matches = [e.path for e in discover(runs_dir) if e.path.name == ref]
    if not matches:
        matches = [e.path for e in discover(runs_dir) if e.path.name.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(f"no run {ref!r}: expected a run directory, or a run id under {runs_dir}")
    names = ", ".join(f"{m.parent.name}/{m.name}" for m in matches[:5])
    raise UsageError(f"run {ref!r} is ambiguous under {runs_dir}: {names}{' ...' if len(matches) > 5 else ''}")


def load(ref: str, runs_dir: Path) -> RunEntry:
    """The readable run named by ``ref``, or a ``RunError`` naming why it cannot be read."""
    entry = read(resolve(ref, runs_dir))
    if entry.data is None:
        raise RunError(f"run {entry.path} is unreadable: {entry.reason}")
    return entry


# --- filtering and sorting ------------------------------------------------------------------
_WHERE = re.compile(r"^\s*([A-Za-z_][\w.\-/]*)\s*(>=|<=|==|!=|>|<|=)\s*(.*?)\s*$")
FIELDS = ("plugin", "id", "status", "device", "started", "duration_s", "target", "parity")


@dataclass(frozen=True)
class Condition:
    """``KEY OP VALUE`` of ``--where``: a metric, a run field, or ``config.<dotted key>``."""

    key: str
    op: str
    value: Any
    text: str

    def matches(self, row: dict[str, Any], data: dict[str, Any] | None) -> bool:
        have = lookup(self.key, row, data)
        if have is None:
            return False
        want = self.value
        if _number(want) and not _number(have):
            try:
                have = float(have)
            except (TypeError, ValueError):
                return False
        elif not _number(want) and not isinstance(have, str):
            have = json.dumps(have)  # true/false, lists: compared as they are written
        try:
            return {
                ">": lambda: have > want, "<": lambda: have < want, ">=": lambda: have >= want,
                "<=": lambda: have <= want, "==": lambda: have == want, "=": lambda: have == want,
                "!=": lambda: have != want,
            }[self.op]()  # fmt: skip
        except TypeError:
            return False


def parse_where(text: str) -> Condition:
    """Parse ``val_miou>0.6``, ``plugin=segmentation``, ``config.train.epochs>=3`` (no eval)."""
    m = _WHERE.match(text)
    if not m or not m.group(3):
        raise UsageError(
            f"--where {text!r}: expected KEY OP VALUE with OP one of > < >= <= = == != (e.g. 'val_miou>0.6')"
        )
    key, op, raw = m.groups()
    raw = raw.strip("'\"") if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"" else raw
    value: Any = raw
    try:
        number = float(raw)
        if math.isfinite(number) or raw.lower() in ("inf", "-inf"):
            value = number
    except ValueError:
        pass
    return Condition(key, op, value, text)


def lookup(key: str, row: dict[str, Any], data: dict[str, Any] | None) -> Any:
    """A run's value for ``key``: a field of the row, ``config.X``, a metric, or None."""
    if key in FIELDS:
        return row.get(key)
    if data is None:
        return None
    if key.startswith("config."):
        return flatten(data.get("config", {})).get(key[len("config.") :])
    return data.get("metrics", {}).get(key)


def select(
    entries: list[RunEntry],
    *,
    plugin: str | None = None,
    status: str | None = None,
    where: list[str] | tuple[str, ...] = (),
    sort: str = "-started",
    limit: int | None = None,
) -> list[RunEntry]:
    """Filter and order entries for ``mlx runs list``. ``sort``: a key, ``-`` first for descending;
    runs without the key come last. Unreadable runs pass only filters they can answer."""
    conditions = [parse_where(w) for w in where]
    out = []
    for e in entries:
        row = e.row
        if plugin and row["plugin"] != plugin:
            continue
        if status and row["status"] != status:
            continue
        if not all(c.matches(row, e.data) for c in conditions):
            continue
        out.append(e)
    descending = sort.startswith("-")
    key = sort.lstrip("-+") or "started"
    if (
        key not in FIELDS
        and not key.startswith("config.")
        and not any(e.data and key in e.data.get("metrics", {}) for e in entries)
    ):
        raise UsageError(f"--sort {sort!r}: no run has {key!r}; use a metric, config.KEY or one of {', '.join(FIELDS)}")
    have = [e for e in out if lookup(key, e.row, e.data) is not None]
    lacking = [e for e in out if lookup(key, e.row, e.data) is None]

    def sort_key(e: RunEntry) -> tuple:
        v = lookup(key, e.row, e.data)
        return (0, v, "") if _number(v) else (1, 0, str(v))

    have.sort(key=sort_key, reverse=descending)
    ordered = have + lacking
    if limit is not None:
        if limit < 0:
            raise UsageError(f"--limit {limit}: expected a number >= 0")
        ordered = ordered[:limit]
    return ordered


# --- show, diff, verify ----------------------------------------------------------------------
def artifact_path(run_dir: Path, artifact: dict[str, Any]) -> Path:
    p = Path(str(artifact.get("path", "")))
    return p if p.is_absolute() else Path(run_dir) / p


def verify(entry: RunEntry) -> list[dict[str, Any]]:
    """Re-hash every artifact of the run; one row per artifact: ``ok``, ``missing`` or ``changed``."""
    assert entry.data is not None
    rows = []
    for art in entry.data.get("artifacts", []):
        if not isinstance(art, dict):
            continue
        path = artifact_path(entry.path, art)
        row = {"path": art.get("path"), "kind": art.get("kind"), "size": art.get("size"), "sha256": art.get("sha256")}
        if not path.is_file():
            row.update(status="missing", detail=f"{path} does not exist")
        else:
            size, digest = path.stat().st_size, sha256(path)
            if digest != art.get("sha256") or size != art.get("size"):
                row.update(status="changed", detail=f"size {art.get('size')} -> {size}, sha256 "
                           f"{str(art.get('sha256'))[:12]} -> {digest[:12]}")  # fmt: skip
            else:
                row.update(status="ok", detail="")
        rows.append(row)
    return rows


def diff(a: RunEntry, b: RunEntry) -> dict[str, list[dict[str, Any]]]:
    """Config keys that differ, metric deltas, library version changes, artifacts whose content
    (re-hashed on disk; the record when the file is gone) differs."""
    assert a.data is not None and b.data is not None
    da, db = a.data, b.data
    out: dict[str, list[dict[str, Any]]] = {}
    fields = [{"key": k, "a": da.get(k), "b": db.get(k)} for k in ("plugin", "device", "target", "status")]
    out["run"] = [f for f in fields if f["a"] != f["b"]]
    ca = {**flatten(da.get("config", {})), **flatten(da.get("options", {}), "options.")}
    cb = {**flatten(db.get("config", {})), **flatten(db.get("options", {}), "options.")}
    out["config"] = [
        {"key": k, "a": ca.get(k), "b": cb.get(k)} for k in sorted(set(ca) | set(cb)) if ca.get(k) != cb.get(k)
    ]
    ma, mb = da.get("metrics", {}), db.get("metrics", {})
    metrics = []
    for k in list(ma) + [k for k in mb if k not in ma]:
        va, vb = ma.get(k), mb.get(k)
        if va == vb:
            continue
        delta = vb - va if _number(va) and _number(vb) else None
        metrics.append({"key": k, "a": va, "b": vb, "delta": delta})
    out["metrics"] = metrics
    va, vb = da.get("versions", {}), db.get("versions", {})
    out["versions"] = [
        {"key": k, "a": va.get(k), "b": vb.get(k)} for k in sorted(set(va) | set(vb)) if va.get(k) != vb.get(k)
    ]
    arts_a = {x.get("path"): x for x in da.get("artifacts", []) if isinstance(x, dict)}
    arts_b = {x.get("path"): x for x in db.get("artifacts", []) if isinstance(x, dict)}
    artifacts = []
    for p in list(arts_a) + [p for p in arts_b if p not in arts_a]:
        ha, hb = _content(a.path, arts_a.get(p)), _content(b.path, arts_b.get(p))
        if ha != hb:
            artifacts.append({"key": p, "a": ha, "b": hb})
    out["artifacts"] = artifacts
    return out


def _content(run_dir: Path, art: dict[str, Any] | None) -> str | None:
    """``sha256:size`` of the artifact's file as it is now; ``missing`` when its file is gone."""
    if art is None:
        return None
    path = artifact_path(run_dir, art)
    if not path.is_file():
        return "missing"
    return f"{sha256(path)[:12]} ({path.stat().st_size} B)"


# --- gc --------------------------------------------------------------------------------------
def gc(entries: list[RunEntry], keep: int, *, plugin: str | None = None, dry_run: bool = False) -> dict[str, list[str]]:
    """Delete all but the ``keep`` newest runs of each plugin (of ``plugin`` only, if given).

    A run whose lock is held is never deleted: the lock is taken (the same ``flock`` as
    ``run_lock``) before the folder is renamed to a hidden temporary name and removed, so a run
    starting at that instant either finds it gone or refuses to start. Newest: by ``created``
    (then by directory name). Unreadable runs are never deleted."""
    if keep < 0:
        raise UsageError(f"--keep {keep}: expected a number >= 0")
    by_plugin: dict[str, list[RunEntry]] = {}
    for e in entries:
        by_plugin.setdefault(e.path.parent.name, []).append(e)
    result: dict[str, list[str]] = {"deleted": [], "kept": [], "running": [], "unreadable": [], "errors": []}
    for name, group in sorted(by_plugin.items()):
        if plugin and name != plugin:
            continue
        # a run whose run.json cannot be read has no date to rank it by: left for a person to look at
        result["unreadable"] += [str(e.path) for e in group if not e.readable]
        group = [e for e in group if e.readable]
        group.sort(key=lambda e: (str((e.data or {}).get("created") or ""), e.path.name), reverse=True)
        result["kept"] += [str(e.path) for e in group[:keep]]
        for e in group[keep:]:
            if e.running or lock_held(e.path):
                result["running"].append(str(e.path))
                continue
            if dry_run:
                result["deleted"].append(str(e.path))
                continue
            try:
                with run_lock(e.path):
                    doomed = Path(tempfile.mkdtemp(prefix=f".{e.path.name}.", suffix=".tmp", dir=e.path.parent))
                    os.replace(e.path, doomed)  # renames over the empty temp folder: one atomic step
                shutil.rmtree(doomed, ignore_errors=True)
                result["deleted"].append(str(e.path))
            except RunError:
                result["running"].append(str(e.path))
            except OSError as exc:
                result["errors"].append(f"{e.path}: {exc}")
    return result
