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


# --- convolutions -> Involution (``--set custom_ops.swap=backbone.3x3``) ---------------------------
def _group_channels(channels: int) -> int:
    """RedNet's 16 channels per group where they divide the layer, else the largest of 8, 4, 2, 1 that does."""
    return next(g for g in (16, 8, 4, 2, 1) if channels % g == 0)


def swappable_conv(conv: Any) -> bool:
    """A torch 3x3 convolution an Involution can stand in for: same channels in and out, stride 1,
    no dilation, 'same' padding, plain (groups=1) or depthwise (groups=channels)."""
    from torch import nn

    return (
        isinstance(conv, nn.Conv2d)
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.padding == (1, 1)
        and conv.in_channels == conv.out_channels
        and conv.groups in (1, conv.in_channels)
        and conv.padding_mode == "zeros"
    )


def swap_backbone_convs(model: Any, impl: str) -> list[str]:
    """Replace every swappable 3x3 convolution under a ``backbone`` submodule of ``model`` (torchvision
    segmentation and detection models name their feature extractor so) with an Involution of the same
    channels; the names of the replaced layers. A conv bias, if any, is dropped (its BN follows)."""
    from .torch_ops import Involution

    swapped = []
    for root in _roots(model):
        if not hasattr(root, "named_modules"):
            continue  # torch only: torchvision's backbones
        backbones = [name for name, _ in root.named_modules() if name.rsplit(".", 1)[-1] == "backbone"]
        for bb_name in backbones:
            backbone = root.get_submodule(bb_name)
            targets = [(n, m) for n, m in backbone.named_modules() if swappable_conv(m)]
            for name, conv in targets:
                parent_name, _, attr = name.rpartition(".")
                parent = backbone.get_submodule(parent_name) if parent_name else backbone
                c = conv.in_channels
                layer = Involution(c, kernel_size=3, stride=1, group_channels=_group_channels(c), impl=impl)
                setattr(parent, attr, layer.to(conv.weight.device))
                swapped.append(f"{bb_name}.{name}")
    return swapped
