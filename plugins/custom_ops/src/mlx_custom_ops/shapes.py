"""Shape rules of involution shared by both backends (no framework imports)."""

from __future__ import annotations

IMPLS = ("composite", "custom")


class InvolutionShapeError(ValueError):
    """An involution layer or input that breaks the operator's shape rules."""


def check_layer(channels: int, kernel_size: int, stride: int, group_channels: int) -> int:
    """Validate a layer's settings; returns the number of groups."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise InvolutionShapeError(
            f"involution kernel_size={kernel_size} must be odd (the window is centred on each pixel)"
        )
    if kernel_size > 63:
        raise InvolutionShapeError(f"involution kernel_size={kernel_size} is too large (at most 63)")
    if stride < 1:
        raise InvolutionShapeError(f"involution stride={stride} must be >= 1")
    if group_channels < 1 or channels % group_channels != 0:
        raise InvolutionShapeError(
            f"involution channels={channels} is not divisible by group_channels={group_channels}"
        )
    return channels // group_channels


def check_input(height: int, width: int, stride: int) -> None:
    for name, size in (("height", height), ("width", width)):
        if size > 0 and size % stride != 0:  # size -1/0: unknown at trace time
            raise InvolutionShapeError(f"involution stride={stride} does not divide the input {name} {size}")


def check_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise InvolutionShapeError(f"involution impl={impl!r}: expected one of {', '.join(IMPLS)}")
    return impl
