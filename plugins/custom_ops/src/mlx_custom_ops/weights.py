"""``model.weights`` for RedNet: the involution authors' released checkpoints, mapped by name.

The released RedNet-26/38/50/101/152 ImageNet checkpoints (github.com/d-li14/involution, mmcls) are
``torch.save`` files of ``{"meta": ..., "state_dict": {...}}`` with an ``ImageClassifier``'s keys:
``backbone.stem.{0,4}.{conv,bn}`` (ConvModule), ``backbone.stem.1.conv{1,2}`` (the stem involution:
``conv1`` = 1x1 conv + BN, ``conv2`` = 1x1 conv with bias), ``backbone.layer<i>.<j>.{conv1,bn1,conv2,bn2,
conv3,bn3,downsample.{0,1}}`` (``conv2`` the involution) and ``head.fc``. Their shortcut of a strided
block is a strided 1x1 conv (``avg_down=False``), so they need ``model.downsample=conv``.

This plugin's own torch RedNet state dicts (``checkpoints/epoch-NNN.pt`` of a torch run: the engine's ``model`` entry, or a
plain ``state_dict()``) load as they are. Files are read with ``torch.load(weights_only=True)``.
Into a Paddle RedNet the same tensors go through the Paddle names (BN ``_mean``/``_variance``, the
Linear weight transposed), as ``model.paddle_to_torch_state`` does the other way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from mlx_core import ConfigError, DataError

EXPECTED = "the involution authors' mmcls RedNet checkpoint (state_dict with backbone./head. keys) or a torch RedNet state dict"

#: mmcls ImageClassifier names -> this plugin's RedNet names, applied in order
MMCLS_RULES = [
    (r"^backbone\.", ""),
    (r"^head\.fc\.", "fc."),
    (r"^layer(\d+)\.", lambda m: f"stages.{int(m[1]) - 1}."),
    (r"\.conv2\.conv1\.conv\.", ".conv2.reduce."),  # the bottleneck's involution
    (r"\.conv2\.conv1\.bn\.", ".conv2.bn."),
    (r"\.conv2\.conv2\.conv\.", ".conv2.span."),
    (r"^stem\.1\.conv1\.conv\.", "stem.1.reduce."),  # the stem's involution
    (r"^stem\.1\.conv1\.bn\.", "stem.1.bn."),
    (r"^stem\.1\.conv2\.conv\.", "stem.1.span."),
    (r"^stem\.(0|4)\.conv\.", r"stem.\1.0."),
    (r"^stem\.(0|4)\.bn\.", r"stem.\1.1."),
    (r"^(stages\.\d+\.\d+)\.conv(1|3)\.weight$", r"\1.conv\2.0.weight"),
    (r"^(stages\.\d+\.\d+)\.bn(1|3)\.", r"\1.conv\2.1."),
    (r"\.downsample\.0\.weight$", ".downsample.0.0.weight"),
    (r"\.downsample\.1\.", ".downsample.0.1."),
]


def _fail(path: Path, why: str) -> DataError:
    return DataError(f"model.weights {path}: {why}; expected {EXPECTED}")


def read_state(path: str | Path) -> tuple[dict, str]:
    """(tensors by name, ``mmcls`` | ``mlx``) of a checkpoint file; one-line ``DataError`` otherwise."""
    import torch

    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"model.weights {p} does not exist (expected {EXPECTED})")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle/zip errors of all kinds, and refused globals
        raise _fail(p, f"not a torch checkpoint ({type(exc).__name__})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)} if isinstance(obj, dict) else {}
    if not state:
        raise _fail(p, f"holds no named tensors ({type(obj).__name__})")
    if any(k.startswith("backbone.") for k in state):
        return state, "mmcls"
    if any(k.startswith(("stem.", "stages.")) for k in state):
        return state, "mlx"
    raise _fail(p, f"no RedNet parameter names (first key {next(iter(state))!r:.60})")


def mmcls_to_rednet(key: str) -> str:
    for pattern, repl in MMCLS_RULES:
        key = re.sub(pattern, repl, key)
    return key


def torch_name(paddle_name: str) -> str:
    owner, _, leaf = paddle_name.rpartition(".")
    leaf = {"_mean": "running_mean", "_variance": "running_var"}.get(leaf, leaf)
    return f"{owner}.{leaf}" if owner else leaf


def load_rednet_weights(net: Any, path: str | Path, backend: str, downsample: str) -> dict[str, Any]:
    """Copy the checkpoint's tensors into ``net`` (a torch or Paddle RedNet); the load report."""
    state, layout = read_state(path)
    if layout == "mmcls":
        if downsample != "conv":
            raise ConfigError(f"model.weights {path} is an mmcls RedNet, whose strided shortcuts are a strided "
                              "1x1 conv: set model.downsample=conv")  # fmt: skip
        state = {mmcls_to_rednet(k): v for k, v in state.items()}
    if backend == "paddle":
        from paddle import nn as pnn

        linear = {f"{n}.weight" for n, layer in net.named_sublayers() if isinstance(layer, pnn.Linear)}
        own = {k: (torch_name(k), tuple(v.shape)) for k, v in net.state_dict().items()}
    else:
        linear = set()
        own = {k: (k, tuple(v.shape)) for k, v in net.state_dict().items()}
    loaded, mismatched, updates = [], [], {}
    for name, (source, shape) in own.items():
        if source not in state:
            continue
        value = state[source].detach().cpu().numpy()
        value = value.T if name in linear else value
        if tuple(value.shape) != shape:
            mismatched.append(f"{source} {list(value.shape)} (model: {list(shape)})")
            continue
        updates[name] = value
        loaded.append(source)
    unused = sorted(set(state) - {s for s, _ in own.values()})
    if not updates:
        raise _fail(Path(path), f"{layout} layout, but no tensor fits this RedNet ({len(mismatched)} of another shape)")
    _assign(net, updates, backend)
    random = sorted(n for n in own if n not in updates)
    return {
        "path": str(path),
        "layout": layout,
        "loaded": len(loaded),
        "skipped": len(mismatched) + len(unused),
        "left_random": len(random),
        "skipped_shape_mismatch": sorted(mismatched),
        "skipped_unknown": unused,
        "left_random_names": random,
    }


def _assign(net: Any, updates: dict[str, np.ndarray], backend: str) -> None:
    if backend == "paddle":
        own = net.state_dict()
        net.set_state_dict({k: v.astype(own[k].numpy().dtype) for k, v in updates.items()})
        return
    import torch

    own = net.state_dict()
    with torch.no_grad():
        for k, v in updates.items():
            own[k].copy_(torch.from_numpy(v.copy()).to(own[k].dtype))
