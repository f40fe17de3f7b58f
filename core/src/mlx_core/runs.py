"""Run directories, the ``run.json`` manifest, atomic writes and the run lock.

A run lives in ``<runs_dir>/<plugin>/<YYYYmmdd-HHMMSS>-<6 hex>/``. Every file the core writes
there is written to a temporary name in the same folder and renamed into place, so a reader
(or a crash) never sees half a file; ``run.json`` is valid JSON at every instant.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import RunError
from .libraries import TRACKED_MODULES

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: fall back to an exclusive-create lock file
    fcntl = None  # type: ignore[assignment]

MANIFEST = "run.json"
LOCK = ".lock"
SCHEMA_VERSION = 1

# Libraries whose versions go into the manifest when a stage has imported them (the table in libraries.py).
TRACKED_LIBRARIES = TRACKED_MODULES


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


#: names of the temporary files and folders that atomic_path / atomic_dir write beside their target
TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only if the block succeeds.

    For libraries that want a path to write to (``torch.save``, ``onnx.save``, PIL, ...)::

        with atomic_path(run_dir / "model.onnx") as tmp:
            torch.onnx.export(model, args, tmp)

    The file is flushed to disk before the rename, so ``final`` is whole even after a power cut.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp} for {final}")
        if tmp.is_file():  # mkstemp makes files 0600; give the file the mode a plain open() would
            os.chmod(tmp, 0o666 & ~_UMASK)
            _fsync(tmp)
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``final``; it replaces ``final`` only if the block
    succeeds (for writers that produce a folder: ``save_pretrained``, a dataset, a tokenizer).

    An existing ``final`` is renamed aside, the new folder renamed in, then the old one removed:
    a kill at any instant leaves either the old folder or the new one under the final name, except
    between the two renames, where the old one waits under a temporary name."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    tmp.chmod(0o777 & ~_UMASK)  # mkdtemp makes it 0700; the final folder should look like any other
    old: Path | None = None
    try:
        yield tmp
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
            os.replace(final, old)
        os.replace(tmp, final)
    finally:
        for leftover in (tmp, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def sweep_partial_files(run_dir: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and folders an interrupted writer left in ``run_dir`` (call it
    only while holding the run lock: then no live writer owns them). Returns what was removed."""
    removed = []
    for root, dirs, files in os.walk(run_dir):
        for name in [d for d in dirs if TEMP_NAME.match(d)]:
            shutil.rmtree(Path(root, name), ignore_errors=True)
            dirs.remove(name)
            removed.append(Path(root, name))
        for name in files:
            if TEMP_NAME.match(name):
                Path(root, name).unlink(missing_ok=True)
                removed.append(Path(root, name))
    return sorted(removed)


def atomic_write(final: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``final`` atomically (temp file, fsync, rename)."""
    with atomic_path(final) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(final)


def atomic_write_json(final: str | os.PathLike, obj: Any) -> Path:
    return atomic_write(final, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def loaded_versions() -> dict[str, str]:
    """Versions of the tracked libraries that are already imported (never imports them)."""
    out: dict[str, str] = {}
    for name in TRACKED_LIBRARIES:
        mod = sys.modules.get(name)
        version = getattr(mod, "__version__", None) if mod else None
        if version:
            out[name] = str(version)
    return out


def declared_versions(requires: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Installed versions of the libraries a plugin declares in ``PluginInfo.requires`` (import
    names, e.g. ``sklearn``), read from distribution metadata without importing them; a name no
    installed distribution provides is left out."""
    import importlib.metadata as md

    providers = md.packages_distributions()  # import name -> distributions providing it
    out: dict[str, str] = {}
    for name in requires:
        for dist in providers.get(name, [name]):
            try:
                out[name] = md.version(dist)
                break
            except md.PackageNotFoundError:
                continue
    return out


def new_run_dir(runs_dir: Path, plugin: str) -> Path:
    """Create a fresh, unique run directory (two runs in the same second never share one)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(runs_dir) / plugin
    base.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        path = base / f"{stamp}-{secrets.token_hex(3)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunError(f"could not create a unique run directory under {base}")


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir/.lock`` for the duration of a run; refuse if another process holds it.

    The lock is an ``flock`` on the file, so the kernel releases it when its holder dies (even by
    SIGKILL): a lock file left behind by a dead run never blocks the next one. The file holds the
    holder's pid, for the message."""
    if fcntl is None:  # pragma: no cover
        with _exclusive_create_lock(Path(run_dir) / LOCK, run_dir):
            yield
        return
    lock = Path(run_dir) / LOCK
    for _ in range(10):
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunError(
                f"run directory {run_dir} is in use by another run (pid {holder}); wait for it to finish"
            ) from None
        try:  # the holder before us may have removed the file we opened: then lock the new one
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    else:
        raise RunError(f"could not lock run directory {run_dir}")
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        lock.unlink(missing_ok=True)  # before the unlock, so a waiter never locks a removed file
        os.close(fd)


@contextlib.contextmanager
def _exclusive_create_lock(lock: Path, run_dir: Path) -> Iterator[None]:  # pragma: no cover
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise RunError(f"run directory {run_dir} is in use by another run; if none is, remove {lock}") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(str(os.getpid()))
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


class Manifest:
    """The ``run.json`` of one run; every mutation is persisted atomically at once."""

    def __init__(self, run_dir: Path, data: dict[str, Any]):
        self.run_dir = Path(run_dir)
        self.data = data

    @property
    def path(self) -> Path:
        return self.run_dir / MANIFEST

    @classmethod
    def create(cls, run_dir: Path, **fields: Any) -> Manifest:
        data = {
            "schema": SCHEMA_VERSION,
            "id": Path(run_dir).name,
            "created": now_iso(),
            "updated": now_iso(),
            **fields,
            "stages": {},
            "metrics": {},
            "artifacts": [],
            "records": {},
            "notes": [],
        }
        m = cls(run_dir, data)
        m.save()
        return m

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> Manifest:
        run_dir = Path(run_dir)
        path = run_dir / MANIFEST
        if not run_dir.is_dir():
            raise RunError(f"run directory {run_dir} does not exist")
        if not path.is_file():
            raise RunError(f"{run_dir} is not a run directory: it has no {MANIFEST}")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise RunError(f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict) or "plugin" not in data or "stages" not in data:
            raise RunError(f"{path} is not an mlx run manifest")
        return cls(run_dir, data)

    def save(self) -> None:
        self.data["updated"] = now_iso()
        atomic_write_json(self.path, self.data)

    # --- stages -------------------------------------------------------------------------
    def stage(self, name: str) -> dict[str, Any]:
        return self.data["stages"].setdefault(name, {"status": "pending"})

    def stage_status(self, name: str) -> str:
        return self.data["stages"].get(name, {}).get("status", "pending")

    def completed(self, name: str) -> bool:
        return self.stage_status(name) == "completed"

    def update_stage(self, name: str, **fields: Any) -> None:
        self.stage(name).update(fields)
        self.save()

    # --- results ------------------------------------------------------------------------
    def log_metrics(self, stage: str, metrics: dict[str, Any], step: int | None = None) -> None:
        clean = {k: _jsonable(v) for k, v in metrics.items()}
        self.data["metrics"].update(clean)
        rec = self.stage(stage)
        rec.setdefault("metrics", {}).update(clean)
        if step is not None:
            rec.setdefault("history", []).append({"step": step, **clean})
        self.save()

    def add_artifact(self, stage: str, path: Path, kind: str = "file", **info: Any) -> dict[str, Any]:
        path = Path(path)
        try:
            rel = str(path.resolve().relative_to(self.run_dir.resolve()))
        except ValueError:
            rel = str(path.resolve())
        entry = {
            "path": rel,
            "stage": stage,
            "kind": kind,
            "size": path.stat().st_size,
            "sha256": sha256(path),
            **{k: _jsonable(v) for k, v in info.items()},
        }
        arts = [a for a in self.data["artifacts"] if a["path"] != rel]
        arts.append(entry)
        self.data["artifacts"] = arts
        self.save()
        return entry

    def record(self, key: str, value: Any) -> None:
        self.data["records"][key] = _jsonable(value)
        self.save()

    def note(self, text: str) -> None:
        if text not in self.data["notes"]:
            self.data["notes"].append(text)
            self.save()

    def artifacts(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [a for a in self.data["artifacts"] if kind is None or a["kind"] == kind]


class RankManifest(Manifest):
    """A worker's manifest on a rank other than 0 of a launched run: the same API for the
    stages, kept in memory and never written (global rank 0 alone owns ``run.json``; this rank's
    files are its own ``logs/rank-K.log``). Artifacts are not hashed: the file may be rank 0's."""

    def save(self) -> None:
        pass

    def add_artifact(self, stage: str, path: Path, kind: str = "file", **info: Any) -> dict[str, Any]:
        return {"path": str(path), "stage": stage, "kind": kind, **info}


def _jsonable(value: Any) -> Any:
    """Numbers from numpy/torch scalars become plain Python numbers."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except Exception:  # noqa: BLE001 - .item() of arbitrary objects
            pass
    return str(value)
