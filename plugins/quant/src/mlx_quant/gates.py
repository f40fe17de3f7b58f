"""Quality gates: the largest change of the task metric a quantization scheme may cause.

Each scheme's report carries the source plugin's metric before (fp32) and after quantization:
mIoU or accuracy (single-forward models with integer targets), BLEU (seq2seq translation
models; exact match when sacrebleu is missing), AUC (a recommender's click score), perplexity
(the bitsandbytes language-model path). The gate compares the change with its limit:

* higher-is-better metrics (mIoU, accuracy, AUC, BLEU, exact match): the *drop*
  ``fp32 - quantized`` in the metric's own units (mIoU 0..1, BLEU 0..100 points);
* perplexity: the *relative rise* ``quantized / fp32 - 1`` (perplexities of different corpora
  are not comparable in absolute terms; 0.05 allows 5 %).

A failed gate is recorded (``quant_gate`` in run.json, and ``gate`` in each scheme's report
entry) and then stops the stage with one ``StageFailed`` line naming the metric, the measured
change and the limit with the key that sets it. Pure pydantic + math here: no torch.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from mlx_core import Section, StageFailed

#: metric name (as the reports spell it) -> the field holding its limit
LIMIT_FIELD = {
    "mIoU": "max_miou_drop",
    "accuracy": "max_accuracy_drop",
    "exact match": "max_accuracy_drop",
    "AUC": "max_auc_drop",
    "BLEU": "max_bleu_drop",
    "perplexity": "max_perplexity_rise",
}
RELATIVE = {"perplexity"}  # lower is better, limit on the relative rise


class GateFields(Section):
    """The limits; quant's own runs spell them ``gate.*``, a wrapped plugin's run ``quant.*``."""

    max_drop: float | None = Field(
        None,
        ge=0,
        description="one limit for whichever metric the source plugin measures, in that metric's units "
        "(perplexity: relative rise); overrides the per-metric limits below",
    )
    max_miou_drop: float = Field(0.05, ge=0, description="largest allowed mIoU drop (fp32 - quantized, 0..1)")
    max_accuracy_drop: float = Field(
        0.05, ge=0, description="largest allowed accuracy (or exact-match rate) drop, 0..1"
    )
    max_auc_drop: float = Field(0.02, ge=0, description="largest allowed AUC drop, 0..1")
    max_bleu_drop: float = Field(2.0, ge=0, description="largest allowed BLEU drop in BLEU points (0..100)")
    max_perplexity_rise: float = Field(
        0.05, ge=0, description="largest allowed relative perplexity rise (quantized / fp32 - 1; 0.05 = 5 %)"
    )


class GateConfig(GateFields):
    """quant's own runs: ``--set gate.max_miou_drop=0.01`` (source.run and the bitsandbytes path)."""


def limit_for(metric: str, limits: GateFields) -> tuple[float, str]:
    """The limit that applies to ``metric`` and the name of the field that set it."""
    if limits.max_drop is not None:
        return limits.max_drop, "max_drop"
    field = LIMIT_FIELD[metric]
    return getattr(limits, field), field


def judge(metric: str, fp32: float, quantized: float, limits: GateFields, prefix: str) -> dict[str, Any]:
    """The verdict of one scheme's metric: change, limit, and whether it passed."""
    limit, field = limit_for(metric, limits)
    if metric in RELATIVE:
        change = quantized / fp32 - 1 if fp32 else math.inf
        kind = "relative rise"
    else:
        change = fp32 - quantized
        kind = "drop"
    both_undefined = math.isnan(fp32) and math.isnan(quantized)  # e.g. mIoU of images with no labelled pixel
    passed = True if both_undefined else bool(change <= limit)  # a NaN change (only one side NaN) fails
    return {"metric": metric, "fp32": fp32, "quantized": quantized, "change": change, "change_kind": kind,
            "limit": limit, "limit_key": f"{prefix}{field}", "passed": passed}  # fmt: skip


def judge_report(report: dict[str, Any], limits: GateFields, prefix: str) -> dict[str, dict[str, Any]]:
    """Judge every scheme of a PTQ report in place (``entry["gate"]``) and return the verdicts by
    scheme. A scheme whose quality has no task metric (no targets to score) is ``passed: null``."""
    verdicts: dict[str, dict[str, Any]] = {}
    for scheme, entry in report.get("schemes", {}).items():
        q = entry.get("quality", {})
        if q.get("metric") in LIMIT_FIELD:
            verdict = judge(q["metric"], float(q["fp32"]), float(q["quantized"]), limits, prefix)
        else:
            verdict = {"metric": None, "passed": None, "reason": "the source data gives no targets to score"}
        entry["gate"] = verdict
        verdicts[scheme] = verdict
    return verdicts


def enforce(ctx: Any, verdicts: dict[str, dict[str, Any]], key: str = "quant_gate") -> None:
    """Record the verdicts in run.json, then fail the stage on the first failed gate."""
    ctx.record(key, verdicts)
    for scheme, v in verdicts.items():
        if v.get("passed") is False:
            raise StageFailed(failure_line(scheme, v))


def failure_line(scheme: str, v: dict[str, Any]) -> str:
    unit = " (relative)" if v["change_kind"] == "relative rise" else ""
    return (f"quant {scheme}: {v['metric']} {v['change_kind']} {v['change']:.4g}{unit} ({v['fp32']:.4g} -> "
            f"{v['quantized']:.4g}) exceeds the quality gate {v['limit_key']}={v['limit']:g}")  # fmt: skip
