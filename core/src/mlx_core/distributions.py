"""What is installed on ``sys.path``, read from directory listings alone.

``importlib.metadata`` costs more to import than a fresh interpreter takes to start (it pulls in
email, zipfile, csv, ...). ``mlx --version`` and a cached ``mlx plugins list`` need only the names
of the ``.dist-info`` folders, which installers must spell ``{name}-{version}.dist-info``
(the wheel spec's "binary distribution format"), so they read those names here.
"""

from __future__ import annotations

import os
import sys


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them (``mlx-Core`` == ``mlx_core``): runs of
    ``-``, ``_``, ``.`` are one ``_`` (by hand: ``re`` is not imported on the hot path)."""
    spaced = name.lower().replace("-", " ").replace("_", " ").replace(".", " ")
    return "_".join(part for part in spaced.split(" ") if part)


def path_listings(path: list[str] | None = None) -> list[tuple[str, list[str]]]:
    """``(entry, sorted names in it)`` for every directory on ``sys.path`` (others: no names).

    Installing, upgrading or removing a distribution adds or removes a ``.dist-info`` folder, and
    a new top-level module adds a name, so two equal listings mean the same installed set."""
    out: list[tuple[str, list[str]]] = []
    for entry in sys.path if path is None else path:
        try:
            # __pycache__ appears when a module is first imported: no change of what is installed
            names = sorted(n for n in os.listdir(entry or ".") if n != "__pycache__")
        except OSError:  # a zip file, a missing folder
            names = []
        out.append((entry, names))
    return out


def dist_info_dirs(listings: list[tuple[str, list[str]]] | None = None) -> dict[str, tuple[str, str]]:
    """Normalized distribution name -> ``(version, path of its .dist-info)``, the first on
    ``sys.path`` winning, as ``importlib.metadata`` would find it."""
    out: dict[str, tuple[str, str]] = {}
    for entry, names in path_listings() if listings is None else listings:
        for name in names:
            if not name.endswith(".dist-info") or "-" not in name:
                continue
            dist, _, version = name[: -len(".dist-info")].partition("-")
            out.setdefault(normalize(dist), (version, os.path.join(entry or ".", name)))
    return out


def installed_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (``None`` when not installed), from its
    ``.dist-info`` folder name; falls back to ``importlib.metadata`` for other layouts (eggs)."""
    found = dist_info_dirs().get(normalize(dist))
    if found:
        return found[0]
    import importlib.metadata as md

    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None
