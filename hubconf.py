"""torch.hub entry points of this checkout: every model the plugins publish through ``mlx_models``.

    import torch
    model = torch.hub.load("/path/to/checkout", "deeplabv3_mobilenet_v3_large", source="local", num_classes=21)

(``torch.hub.list`` and ``torch.hub.help`` take GitHub repositories only in torch 2.14; list the
names with ``mlx models list`` or ``mlx_core.hub.entries()``.)

Works from a plain checkout: the core and the plugins' sources are put on ``sys.path`` when
they are not installed. Only plugins whose own libraries are importable contribute.
"""

import importlib as _importlib
import sys as _sys
from pathlib import Path as _Path

dependencies = ["torch", "torchvision", "pluggy", "pydantic", "rich", "packaging"]

_ROOT = _Path(__file__).resolve().parent


def _published() -> dict:
    for src in [_ROOT / "core" / "src", *sorted(_ROOT.glob("plugins/*/src"))]:
        if str(src) not in _sys.path:
            _sys.path.append(str(src))  # appended: an installed version of a package wins
    found = {}
    for pkg in sorted(_ROOT.glob("plugins/*/src/mlx_*")):
        try:
            module = _importlib.import_module(pkg.name)
        except ImportError:
            continue
        publish = getattr(module, "mlx_models", None)
        if publish is not None:
            found.update(publish() or {})
    return found


globals().update(_published())
