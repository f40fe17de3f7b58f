"""An exact export-time rewrite: a dilated convolution whose off-centre taps can only read zero
padding becomes a 1x1 convolution of its centre tap.

DeepLabV3's ASPP runs 3x3 convolutions of dilation 12, 24 and 36 on the backbone's map, which at
a 400x400 input is 25x25 (output stride 16). With stride 1 and "same" zero padding
(``padding == dilation * (k - 1) / 2``), output pixel ``i`` reads input ``i + (t - c) * dilation``
for tap ``t`` (centre ``c``); for every ``t != c`` that offset is at least ``dilation``, so when
``dilation >= H`` (and ``>= W``) it lands outside ``[0, H)``: in the zero padding, for every pixel.
Those taps contribute exactly ``0 * w``; dropping them leaves ``conv1x1(x, w[:, :, c, c])``. The
rewrite needs the map size, so it applies only to a model exported for one fixed input size, and
each rewrite is recorded (module name, dilation, map size) so that the export says what changed.

The same reasoning applies tap by tap: a tap of offset ``o`` with ``|o| < H`` reads the input only
for the ``H - |o|`` output rows it does not push off the map. At 25x25, dilation 24 reads real
pixels on one border row or column per tap; :class:`SparseTaps` computes the centre tap as a 1x1
convolution on the whole map plus each other tap as a 1x1 convolution on just the slice it reads,
padded back into place: the same sum of the same products (only their order of addition differs,
float32 rounding), for a fraction of the multiply-adds. It is used where it leaves at most
``MAX_WORK`` of the dense convolution's work.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: a convolution is rewritten tap by tap only where that leaves at most this share of its work
MAX_WORK = 0.5


@dataclass(frozen=True)
class Rewrite:
    module: str
    kernel: tuple[int, int]
    dilation: tuple[int, int]
    map_size: tuple[int, int]
    #: "centre tap" (every other tap reads padding only) or "sparse taps" (border slices)
    kind: str
    #: multiply-adds left, as a share of the dense convolution's
    work: float

    def as_dict(self) -> dict:
        return asdict(self)


def _same_padding(conv: nn.Conv2d) -> bool:
    """Stride 1, zero "same" padding, odd kernel: output pixel i is centred on input pixel i."""
    kh, kw = conv.kernel_size
    if conv.padding_mode != "zeros" or conv.stride != (1, 1) or isinstance(conv.padding, str):
        return False
    if kh % 2 == 0 or kw % 2 == 0 or (kh, kw) == (1, 1):
        return False
    dh, dw = conv.dilation
    return conv.padding == (dh * (kh - 1) // 2, dw * (kw - 1) // 2)


def _span(offset: int, n: int) -> tuple[int, int, int, int] | None:
    """For a tap of ``offset`` on an axis of ``n``: (output start, output end, input start, input
    end) of the pixels it reads inside the map, or None when it reads only padding."""
    if abs(offset) >= n:
        return None
    return max(0, -offset), min(n, n - offset), max(0, offset), min(n, n + offset)


def taps(conv: nn.Conv2d, map_size: tuple[int, int]) -> list[tuple[int, int, tuple[int, ...], tuple[int, ...]]]:
    """Every tap (ty, tx) of ``conv`` that reads real pixels on a ``map_size`` input, with its
    row and column spans (see ``_span``)."""
    kh, kw = conv.kernel_size
    dh, dw = conv.dilation
    out = []
    for ty in range(kh):
        rows = _span((ty - kh // 2) * dh, map_size[0])
        for tx in range(kw):
            cols = _span((tx - kw // 2) * dw, map_size[1])
            if rows is not None and cols is not None:
                out.append((ty, tx, rows, cols))
    return out


def work(conv: nn.Conv2d, map_size: tuple[int, int]) -> float:
    """Multiply-adds of the taps that read real pixels, as a share of the dense convolution's."""
    kh, kw = conv.kernel_size
    area = sum((r[1] - r[0]) * (c[1] - c[0]) for _, _, r, c in taps(conv, map_size))
    return area / (kh * kw * map_size[0] * map_size[1])


def padding_only(conv: nn.Conv2d, map_size: tuple[int, int]) -> bool:
    """Whether every off-centre tap of ``conv`` reads only zero padding on a ``map_size`` input."""
    if not _same_padding(conv):
        return False
    kh, kw = conv.kernel_size
    return [(ty, tx) for ty, tx, _, _ in taps(conv, map_size)] == [(kh // 2, kw // 2)]


class SparseTaps(nn.Module):
    """``conv`` on a fixed ``map_size``: the centre tap as a 1x1 convolution of the whole map, each
    other tap that reads real pixels as a 1x1 convolution of the slice it reads, padded into place."""

    def __init__(self, conv: nn.Conv2d, map_size: tuple[int, int]) -> None:
        super().__init__()
        kh, kw = conv.kernel_size
        self.map_size = tuple(map_size)
        self.groups = conv.groups
        self.centre = centre_tap(conv)
        self.spans: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        weights = []
        for ty, tx, rows, cols in taps(conv, map_size):
            if (ty, tx) != (kh // 2, kw // 2):
                weights.append(conv.weight.detach()[:, :, ty : ty + 1, tx : tx + 1].clone())
                self.spans.append((rows, cols))
        self.weights = nn.ParameterList(nn.Parameter(w, requires_grad=False) for w in weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.map_size
        if tuple(x.shape[-2:]) != (h, w):
            raise ValueError(f"SparseTaps built for a {h}x{w} map, got {tuple(x.shape[-2:])}")
        y = self.centre(x)
        for weight, ((o0, o1, i0, i1), (p0, p1, j0, j1)) in zip(self.weights, self.spans, strict=True):
            part = F.conv2d(x[:, :, i0:i1, j0:j1], weight, groups=self.groups)
            y = y + F.pad(part, (p0, w - p1, o0, h - o1))
        return y


def centre_tap(conv: nn.Conv2d) -> nn.Conv2d:
    """The 1x1 convolution that computes what ``conv`` computes when its off-centre taps read zeros."""
    kh, kw = conv.kernel_size
    one = nn.Conv2d(conv.in_channels, conv.out_channels, 1, groups=conv.groups, bias=conv.bias is not None)
    with torch.no_grad():
        one.weight.copy_(conv.weight[:, :, kh // 2 : kh // 2 + 1, kw // 2 : kw // 2 + 1])
        if conv.bias is not None:
            one.bias.copy_(conv.bias)
    return one.to(conv.weight.device, conv.weight.dtype)


def input_sizes(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, int]]:
    """The spatial size of every Conv2d's input when ``model`` runs on ``x`` (one forward pass)."""
    sizes: dict[str, tuple[int, int]] = {}

    def recorder(name: str):
        def hook(module: nn.Module, args: tuple) -> None:  # returns None: the inputs stay as they are
            sizes.setdefault(name, tuple(args[0].shape[-2:]))

        return hook

    hooks = [m.register_forward_pre_hook(recorder(n)) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return sizes


def rewrite(model: nn.Module, x: torch.Tensor, max_work: float = MAX_WORK) -> tuple[nn.Module, list[Rewrite]]:
    """A copy of ``model`` for inputs of ``x``'s size, with every convolution that reads only padding
    off its centre rewritten to its centre tap, and every dilated one whose taps leave at most
    ``max_work`` of the work to sparse taps; and the list of what was rewritten. ``model`` is left
    as it was."""
    out = copy.deepcopy(model).eval()
    done: list[Rewrite] = []
    for name, size in input_sizes(out, x).items():
        conv = out.get_submodule(name)
        if not _same_padding(conv):
            continue
        share = work(conv, size)
        if padding_only(conv, size):
            new, kind = centre_tap(conv), "centre tap"
        elif share <= max_work and max(conv.dilation) > 1:  # undilated convs on tiny maps: not worth the ops
            new, kind = SparseTaps(conv, size), "sparse taps"
        else:
            continue
        parent_name, _, attr = name.rpartition(".")
        setattr(out.get_submodule(parent_name) if parent_name else out, attr, new)
        done.append(Rewrite(name, tuple(conv.kernel_size), tuple(conv.dilation), tuple(size), kind, round(share, 4)))
    return out, done
