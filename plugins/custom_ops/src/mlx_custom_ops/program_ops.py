"""What a saved Paddle inference program holds: its operators by type, read from the file itself.

Paddle 3 (PIR) writes ``<prefix>.json``: every operation is an object whose ``"#"`` is
``"<dialect id>.<op name>"`` (``"1.conv2d"``, and for a custom operator registered with
``PD_BUILD_OP(involution)`` ``"<id>.involution"``). The legacy ``<prefix>.pdmodel`` is a
``ProgramDesc`` protobuf whose blocks list ops with a ``type``. Either way the count comes from
the saved program, not from the config that asked for it.
"""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path
from typing import Any

OP = re.compile(r"^\d+\.([A-Za-z_][A-Za-z0-9_]*)$")


def _walk(node: Any, out: collections.Counter) -> None:
    if isinstance(node, dict):
        tag = node.get("#")
        # an operation has inputs "I" / outputs "O"; types and attributes ("0.t_f32", "0.a_str") have "D"
        m = OP.match(tag) if isinstance(tag, str) and ("I" in node or "O" in node) else None
        if m:
            out[m[1]] += 1
        for v in node.values():
            _walk(v, out)
    elif isinstance(node, list):
        for v in node:
            _walk(v, out)


def program_ops(prefix: str | Path) -> dict[str, int]:
    """Operator type -> how many times the saved program at ``prefix`` (.json or .pdmodel) uses it."""
    prefix = Path(prefix)
    counts: collections.Counter = collections.Counter()
    pir = prefix.with_name(prefix.name + ".json")
    if pir.is_file():
        program = json.loads(pir.read_text())["program"]
        _walk(program, counts)
        return dict(counts)
    from paddle.base.proto import framework_pb2

    desc = framework_pb2.ProgramDesc()
    desc.ParseFromString(prefix.with_name(prefix.name + ".pdmodel").read_bytes())
    for block in desc.blocks:
        counts.update(op.type for op in block.ops)
    return dict(counts)
