"""Swap the implementation of every Involution layer inside any model object.

Works on Paddle layers and torch modules, and on models wrapped in dicts, lists or objects
holding them under ``model``/``net``/``module``. A layer takes part when it has
``set_involution_impl(impl)`` (this plugin's layers do; another plugin's layer can opt in by
providing that method).
"""

from __future__ import annotations

from typing import Any


def _roots(obj: Any, depth: int = 0) -> list[Any]:
    if depth > 3 or obj is None:
        return []
    if hasattr(obj, "named_modules") or hasattr(obj, "sublayers"):
        return [obj]
    if isinstance(obj, dict):
        return [r for v in obj.values() for r in _roots(v, depth + 1)]
    if isinstance(obj, (list, tuple)):
        return [r for v in obj for r in _roots(v, depth + 1)]
    return [r for name in ("model", "net", "network", "module") for r in _roots(getattr(obj, name, None), depth + 1)]


def _layers(root: Any) -> list[Any]:
    if hasattr(root, "named_modules"):  # torch
        return [m for _, m in root.named_modules()]
    return [root, *root.sublayers()]  # paddle


def swap_involution(model: Any, impl: str) -> int:
    """Set ``impl`` on every involution layer reachable from ``model``; returns how many."""
    seen: set[int] = set()
    count = 0
    for root in _roots(model):
        for layer in _layers(root):
            if id(layer) in seen or not callable(getattr(layer, "set_involution_impl", None)):
                continue
            seen.add(id(layer))
            layer.set_involution_impl(impl)
            count += 1
    return count
