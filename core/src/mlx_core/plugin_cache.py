"""A cache of ``mlx plugins list``: the rows and the rendered table, reused while nothing that
could change them has changed.

Listing plugins for real imports every plugin's top-level module, pluggy, pydantic and rich:
many times the interpreter's own start-up. The answer depends only on

- what is installed: the names in every ``sys.path`` folder (a ``.dist-info`` folder per
  distribution and version; a new top-level module adds a name), the interpreter, the core;
- the files the answer was read from: each plugin's ``.dist-info`` files (``entry_points.txt``,
  ``METADATA``, ``direct_url.json``), every ``.py`` file of its top-level package (an editable
  install's source tree is where a plugin breaks between two installs) and the core's own files,
  compared by modification time and size;
- the GPU check (``nvidia-smi`` present, ``/proc/driver/nvidia/gpus``, ``MLX_FAKE_NO_GPU``).

So a plugin that broke since the cache was written is listed as broken: its file changed.
Files changed in the two seconds before a listing are not trusted (a second change in the same
clock tick would keep the modification time), so that listing is not cached. The cache is
skipped with ``MLX_LOAD_PLUGINS`` or ``MLX_TRACE_PLUGINS`` set and off with ``MLX_PLUGIN_CACHE=0``.

One file per interpreter under ``$MLX_CACHE_DIR`` (else ``$XDG_CACHE_HOME/mlx``, else
``~/.cache/mlx``), replaced atomically (temporary file + rename): concurrent listings each write a
whole file and readers see one of them whole. An unreadable or foreign file is a miss. The file
is ``marshal`` data, not JSON: ``json`` imports ``re``, which alone costs a third of a bare
interpreter start, and the file belongs to one interpreter (its path is in the file name).

This module imports only the standard library's light modules: it is the hot path.
"""

from __future__ import annotations

import marshal
import os
import sys
import time

from .distributions import dist_info_dirs, normalize, path_listings

TYPE_CHECKING = False  # typing and dataclasses stay off the hot path (each costs more than this module)
if TYPE_CHECKING:
    from typing import Any

#: bump when the file's layout or the rows' meaning changes
FORMAT = 1
#: files modified this recently are not trusted to show a later change by their mtime
RACY_SECONDS = 2.0
#: rendered tables kept per file (one per terminal width / colour setting seen)
MAX_RENDERED = 8
_ENV = ("MLX_FAKE_NO_GPU",)
#: what rich's Console reads to decide width and colours
_RENDER_ENV = ("TERM", "COLORTERM", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES")
_DIST_FILES = ("entry_points.txt", "METADATA", "direct_url.json", "RECORD")


def enabled() -> bool:
    if os.environ.get("MLX_PLUGIN_CACHE", "1").strip().lower() in ("", "0", "false", "no", "off"):
        return False
    # an allow-list or tracing asks for a real load (and its stderr lines)
    return "MLX_LOAD_PLUGINS" not in os.environ and os.environ.get("MLX_TRACE_PLUGINS", "") in ("", "0")


def cache_dir() -> str:
    explicit = os.environ.get("MLX_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mlx")


def cache_file() -> str:
    # one file per interpreter and sys.path (each venv its own; `python -m` differs from the
    # console script by sys.path[0]), named by a CRC: hashlib costs more to import than zlib
    import zlib

    tag = "".join(c if c.isalnum() else "_" for c in os.path.realpath(sys.prefix)).strip("_")[-80:]
    crc = zlib.crc32("\0".join([sys.executable, *sys.path]).encode())
    return os.path.join(cache_dir(), f"plugins-{tag}-{crc:08x}.marshal")


def _gpu() -> list[Any]:
    smi = next(
        (
            d
            for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and os.access(os.path.join(d, "nvidia-smi"), os.X_OK)
        ),
        None,
    )
    try:
        gpus = sorted(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        gpus = []
    return [smi, gpus]


def key() -> dict[str, Any]:
    """Everything the listing depends on that is cheap to read (no file contents)."""
    return {
        "format": FORMAT,
        "python": [sys.executable, sys.version],
        "path": path_listings(),
        "env": {name: os.environ.get(name) for name in _ENV},
        "gpu": _gpu(),
    }


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size]


def render_key(is_terminal: bool) -> str:
    """What the rendered table depends on: terminal or pipe, its size, rich's environment."""
    size: Any = None
    if is_terminal:
        try:
            size = list(os.get_terminal_size(sys.stdout.fileno()))
        except (OSError, ValueError):
            size = None
    return repr([is_terminal, size, [os.environ.get(n) for n in _RENDER_ENV]])


def stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def load() -> dict[str, Any] | None:
    """The cached listing if every input is unchanged (``rows``: the ``--json`` rows,
    ``rendered``: render key -> table text), else ``None``."""
    if not enabled():
        return None
    try:
        with open(cache_file(), "rb") as fh:
            cached = marshal.load(fh)
        if cached.get("key") != key():
            return None
        if any(_stat(path) != stat for path, stat in cached["watched"].items()):
            return None
        if not isinstance(cached["rows"], list) or not isinstance(cached.get("rendered"), dict):
            return None
        return cached
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError):
        return None


# --- writing (the cold path: a real load just happened) ------------------------------------------
def jsonable(value: Any) -> Any:
    """A JSON value for any field of a plugin description: classes (config, options) become
    ``"module:qualname"``, mappings dicts, tuples lists, dataclasses dicts of all their fields."""
    import dataclasses
    from collections.abc import Mapping

    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, type):
        return f"{value.__module__}:{value.__qualname__}"
    if dataclasses.is_dataclass(value):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return repr(value)


def _package_files(top: str) -> list[str]:
    """The files of top-level module ``top`` as the path finder would find it (first on
    ``sys.path``): every ``.py`` file of a package, the file of a module."""
    for entry in sys.path:
        base = os.path.join(entry or ".", top)
        if os.path.isdir(base):
            files = []
            for root, dirs, names in os.walk(base):
                dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
                files.extend(os.path.join(root, n) for n in names if n.endswith(".py"))
            return sorted(files)
        if os.path.isfile(base + ".py"):
            return [base + ".py"]
    return []


def watched_files(records: list[Any]) -> list[str]:
    """The files the listing of these plugin records was read from (see the module docstring)."""
    dists = dist_info_dirs()
    paths = set(_package_files(__name__.partition(".")[0]))
    for rec in records:
        if rec.entry_point:
            paths.update(_package_files(rec.entry_point.partition(":")[0].partition(".")[0]))
        found = dists.get(normalize(rec.distribution)) if rec.distribution else None
        if found:
            paths.update(os.path.join(found[1], name) for name in _DIST_FILES)
    return sorted(paths)


def store(cache_key: dict[str, Any], records: list[Any], rows: list[dict[str, Any]], rendered: dict[str, str]) -> bool:
    """Write the cache (False when it is off, or an input changed too recently to be trusted)."""
    if not enabled():
        return False
    watched = {path: _stat(path) for path in watched_files(records)}
    recent = time.time_ns() - int(RACY_SECONDS * 1e9)
    if any(stat and stat[0] >= recent for stat in watched.values()):
        return False
    previous = load()
    if previous and previous["rows"] == rows:  # same listing: keep the renderings already made
        rendered = {**previous["rendered"], **rendered}
    rendered = dict(list(rendered.items())[-MAX_RENDERED:])
    from .runs import atomic_write

    cached = {"key": cache_key, "watched": watched, "rows": rows, "rendered": rendered}
    try:
        atomic_write(cache_file(), marshal.dumps(cached))
    except (OSError, ValueError):  # a read-only home, a value marshal cannot write: only slower
        return False
    return True
