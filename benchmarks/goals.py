"""Goals as the benchmarks record them: ``{"goal", "ratio", "target", "met", "reason"}``.

Every ``benchmarks/results/<name>.json`` carries a ``goals`` list of these (issue 20): the ratio
measured in that run, the target as text (``"<= 4"``), ``met`` computed here (never typed), and a
reason where a goal is not met. ``benchmarks/readme_table.py`` turns them into the README's
"Measured" table.
"""

from __future__ import annotations

import operator
from typing import Any

_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


def goal(text: str, ratio: float | None, target: str, reason: str = "", **extra: Any) -> dict[str, Any]:
    """One goal; ``target`` is an operator and a number (``"<= 0.3"``). ``met`` is ``False``
    when nothing was measured (``ratio`` None), and then ``reason`` must say why."""
    op, _, bound = target.partition(" ")
    met = ratio is not None and _OPS[op](ratio, float(bound))
    out: dict[str, Any] = {
        "goal": text,
        "ratio": None if ratio is None else round(float(ratio), 4),
        "target": target,
        "met": met,
    }
    if not met:
        out["reason"] = reason or ("not measured" if ratio is None else "measured ratio misses the target")
    out.update(extra)
    return out
