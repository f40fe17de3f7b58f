"""``mlx runs report``: one self-contained static HTML page for one or more runs.

No server, no network, no script: the training curves are inline SVG drawn here from the
step history in ``run.json`` (one chart per metric, the runs overlaid in the colours of
``PALETTE``), followed by the runs, a metrics table, the export parity checks and the
artifacts. Every value from a manifest is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from typing import Any

from .runsdb import RunEntry, flatten

#: curve colours, one per run in the order given (the screenshot test looks for the first two)
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#8c564b")
WIDTH, HEIGHT = 560, 280
#: the plot area's fill: a colour nothing else on the page has, so a screenshot can find the plot
PLOT_BACKGROUND = "#fcfcf4"
MARGIN = {"left": 64, "right": 16, "top": 28, "bottom": 36}
PARITY_FIELDS = ("parity_ok", "max_abs_diff", "mask_agreement", "top1_agreement", "token_identical", "identical")

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 8px; } h2 { font-size: 16px; margin: 20px 0 6px; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.chart { border: 1px solid #ddd; background: #fff; }
table { border-collapse: collapse; margin: 4px 0; } td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 14px; height: 4px; vertical-align: middle; margin-right: 6px; }
.bad { color: #b00; font-weight: bold; } .muted { color: #777; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None:
        return "—"
    return str(value)


def curves(entries: list[RunEntry]) -> dict[str, list[list[tuple[float, float]]]]:
    """metric -> one list of (step, value) per run, from every stage's history rows."""
    keys: list[str] = []
    per_run: list[dict[str, list[tuple[float, float]]]] = []
    for e in entries:
        series: dict[str, list[tuple[float, float]]] = {}
        for rec in (e.data or {}).get("stages", {}).values():
            for row in (rec.get("history") or []) if isinstance(rec, dict) else []:
                step = row.get("step")
                if not isinstance(step, (int, float)):
                    continue
                for k, v in row.items():
                    if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                        series.setdefault(k, []).append((float(step), float(v)))
                        if k not in keys:
                            keys.append(k)
        per_run.append(series)
    return {k: [run.get(k, []) for run in per_run] for k in keys}


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(n + 1) if first + i * step <= hi + step * 1e-9]


def chart(metric: str, runs: list[list[tuple[float, float]]]) -> str:
    """One SVG line chart: every run's points of ``metric``, x = step."""
    points = [p for run in runs for p in run]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:  # one step: a dot; steps are never negative, so the axis starts at 0 at most
        x0, x1 = max(0.0, x0 - 1), x1 + 1
    if y1 == y0:
        pad = abs(y0) * 0.1 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    left, top = MARGIN["left"], MARGIN["top"]
    w, h = WIDTH - left - MARGIN["right"], HEIGHT - top - MARGIN["bottom"]

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * w

    def sy(y: float) -> float:
        return top + h - (y - y0) / (y1 - y0) * h

    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{_e(metric)}">',
             f'<text x="{left}" y="18" font-size="13" font-weight="bold">{_e(metric)}</text>',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="{PLOT_BACKGROUND}" stroke="#999"/>']  # fmt: skip
    for t in _ticks(y0, y1):
        y = sy(t)
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{t:.4g}</text>')
    for t in _ticks(x0, x1):
        x = sx(t)
        parts.append(f'<text x="{x:.1f}" y="{top + h + 16}" font-size="11" text-anchor="middle">{t:.4g}</text>')
    parts.append(f'<text x="{left + w / 2:.1f}" y="{HEIGHT - 4}" font-size="11" text-anchor="middle">step</text>')
    for i, run in enumerate(runs):
        if not run:
            continue
        colour = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in run)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2.5" points="{coords}"/>')
        parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{colour}"/>' for x, y in run]
    parts.append("</svg>")
    return "".join(parts)


def _table(head: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows]
    return "".join(out) + "</table>"


def _td(value: Any, cls: str = "") -> str:
    num = isinstance(value, (int, float)) and not isinstance(value, bool)
    classes = " ".join(c for c in (cls, "num" if num else "") if c)
    return f'<td class="{classes}">{_e(_fmt(value))}</td>' if classes else f"<td>{_e(_fmt(value))}</td>"


def render(entries: list[RunEntry]) -> str:
    """The whole page for ``entries`` (readable runs), as a string."""
    names = [f"{e.row['plugin']}/{e.row['id']}" for e in entries]
    legend = "".join(
        f'<span style="margin-right:16px"><span class="swatch" style="background:{PALETTE[i % len(PALETTE)]}"></span>'
        f"{_e(n)}</span>"
        for i, n in enumerate(names)
    )
    body = [f"<h1>mlx runs report: {_e(', '.join(names))}</h1>", f"<div>{legend}</div>", "<h2>training curves</h2>"]
    found = curves(entries)
    body.append(
        '<div class="charts">' + "".join(chart(k, runs) for k, runs in found.items()) + "</div>"
        if found
        else '<p class="muted">no metric was logged with a step</p>'
    )
    body.append("<h2>runs</h2>")
    body.append(
        _table(
            ["run", "status", "started", "duration (s)", "device", "stages", "parity"],
            [
                [
                    f'<td><span class="swatch" style="background:{PALETTE[i % len(PALETTE)]}"></span>{_e(names[i])}</td>',
                    _td(e.row["status"], "bad" if e.row["status"] not in ("completed", "running") else ""),
                    _td(e.row.get("started")),
                    _td(e.row.get("duration_s")),
                    _td(e.row.get("device")),
                    _td(" ".join(f"{k}:{v}" for k, v in e.row.get("stages", {}).items())),
                    _td(e.row.get("parity")),
                ]
                for i, e in enumerate(entries)
            ],
        )
    )
    keys: list[str] = []
    for e in entries:
        keys += [k for k in (e.data or {}).get("metrics", {}) if k not in keys]
    body.append("<h2>metrics</h2>")
    body.append(
        _table(
            ["metric", *map(_e, names)],
            [[_td(k), *(_td((e.data or {}).get("metrics", {}).get(k)) for e in entries)] for k in keys],
        )
    )
    if len(entries) > 1:
        configs = [flatten((e.data or {}).get("config", {})) for e in entries]
        differing = sorted(k for k in set().union(*configs) if len({repr(c.get(k)) for c in configs}) > 1)
        body.append("<h2>config keys that differ</h2>")
        body.append(_table(["key", *map(_e, names)], [[_td(k), *(_td(c.get(k)) for c in configs)] for k in differing]))
    else:
        body.append("<h2>config</h2>")
        flat = flatten((entries[0].data or {}).get("config", {})) if entries else {}
        body.append(_table(["key", "value"], [[_td(k), _td(v)] for k, v in flat.items()]))
    body.append("<h2>export parity</h2>")
    rows = []
    for name, e in zip(names, entries, strict=True):
        for art in (e.data or {}).get("artifacts", []):
            facts = {k: art[k] for k in PARITY_FIELDS if isinstance(art, dict) and k in art}
            if facts:
                bad = facts.get("parity_ok") is False
                rows.append([_td(name), _td(art.get("path")), _td(art.get("format", art.get("kind"))),
                             _td(" ".join(f"{k}={_fmt(v)}" for k, v in facts.items()), "bad" if bad else "")])  # fmt: skip
    body.append(_table(["run", "artifact", "format", "checks"], rows))
    body.append("<h2>artifacts</h2>")
    rows = [
        [
            _td(name),
            _td(a.get("path")),
            _td(a.get("stage")),
            _td(a.get("kind")),
            _td(a.get("size")),
            _td(str(a.get("sha256"))[:16]),
        ]
        for name, e in zip(names, entries, strict=True)
        for a in (e.data or {}).get("artifacts", [])
        if isinstance(a, dict)
    ]
    body.append(_table(["run", "path", "stage", "kind", "bytes", "sha256"], rows))
    notes = [
        [_td(name), _td(n)] for name, e in zip(names, entries, strict=True) for n in (e.data or {}).get("notes", [])
    ]
    if notes:
        body.append("<h2>notes</h2>" + _table(["run", "note"], notes))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>mlx runs report</title><style>{CSS}</style></head><body>" + "".join(body) + "</body></html>\n"
    )
