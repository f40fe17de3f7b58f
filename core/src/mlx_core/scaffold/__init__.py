"""``mlx plugins new NAME``: write an installable plugin package from ``template/``.

Files under ``template/`` are copied with ``$name``, ``$dist``, ``$module``, ``$title`` and
``$core_version`` substituted (``string.Template``); a path part ``mlx___name__`` becomes
the import package ``mlx_<name>``.
"""

from __future__ import annotations

import keyword
import re
import string
from pathlib import Path

from ..errors import UsageError

TEMPLATE = Path(__file__).parent / "template"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
#: names whose distribution or import package would be the core's or the command's own
#: (``core`` would write a distribution ``mlx-core``: installing it uninstalls the real core)
RESERVED = frozenset({"core", "mlx"})


def check_name(name: str) -> None:
    if not NAME_RE.match(name) or keyword.iskeyword(name):
        raise UsageError(
            f"invalid plugin name {name!r}: expected 2-40 lowercase letters, digits or '_', starting with a letter"
        )
    if name in RESERVED or name.startswith("mlx_"):
        raise UsageError(f"plugin name {name!r} is reserved (mlx-core and the mlx command use it); choose another")
    taken = _taken_by(name)
    if taken:
        raise UsageError(f"plugin name {name!r} is taken: {taken}; choose another")


def _taken_by(name: str) -> str:
    """What already installed here uses ``name``: a plugin entry point, the distribution
    ``mlx-<name>`` or the import package ``mlx_<name>`` (read from metadata, nothing imported)."""
    import importlib.metadata as md
    import importlib.util

    from ..plugins import GROUP

    for ep in md.entry_points(group=GROUP):
        if ep.name == name:
            dist = getattr(ep, "dist", None)
            return f"the installed plugin {name!r} ({dist.metadata['Name'] if dist else ep.value})"
    dist = f"mlx-{name.replace('_', '-')}"
    try:
        md.distribution(dist)
        return f"the distribution {dist} is installed"
    except md.PackageNotFoundError:
        pass
    if importlib.util.find_spec(f"mlx_{name}") is not None:
        return f"the module mlx_{name} is importable"
    return ""


def create(name: str, parent: Path) -> Path:
    """Write ``<parent>/mlx-<name>/`` and return it; refuses to overwrite anything."""
    from .. import __version__

    check_name(name)
    dist = f"mlx-{name.replace('_', '-')}"
    target = Path(parent) / dist
    if target.exists():
        raise UsageError(f"{target} already exists; choose another --dir or remove it")
    if not Path(parent).is_dir():
        raise UsageError(f"--dir {parent} is not a directory")
    values = {
        "name": name,
        "dist": dist,
        "module": f"mlx_{name}",
        "title": name.replace("_", " ").title(),
        "core_version": __version__.split("+")[0],
    }
    files = [p for p in sorted(TEMPLATE.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    staging = target.with_name(f".{target.name}.partial")
    for src in files:
        rel = Path(str(src.relative_to(TEMPLATE)).replace("mlx___name__", values["module"]).replace("__name__", name))
        out = staging / rel.with_name(rel.name.removesuffix(".tmpl"))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(string.Template(src.read_text()).substitute(values))
    staging.rename(target)  # the package appears whole or not at all
    return target
