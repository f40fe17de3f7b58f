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
import secrets
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import RunError

MANIFEST = "run.json"
LOCK = ".lock"
SCHEMA_VERSION = 1

# Libraries whose versions go into the manifest when a stage has imported them.
TRACKED_LIBRARIES = (
    "torch", "torchvision", "torchrec", "fbgemm_gpu", "torchmultimodal", "paddle", "executorch",
    "onnx", "onnxruntime", "transformers", "datasets", "tokenizers", "sacrebleu", "bitsandbytes",
    "torchao", "peft", "accelerate", "numpy", "PIL",
)  # fmt: skip


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only if the block succeeds.

    For libraries that want a path to write to (``torch.save``, ``onnx.save``, PIL, ...)::

        with atomic_path(run_dir / "model.onnx") as tmp:
            torch.onnx.export(model, args, tmp)
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
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir/.lock`` for the duration of a run; refuse if a live process holds it."""
    lock = Path(run_dir) / LOCK
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder and _pid_alive(holder):
                raise RunError(
                    f"run directory {run_dir} is in use by another run (pid {holder}); wait for it or remove {lock}"
                ) from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        break
    else:
        raise RunError(f"could not lock run directory {run_dir}")
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
