"""Quality gates: a scheme whose metric moves more than its limit fails the stage in one line,
and every verdict (passed or not) is recorded in run.json."""

from __future__ import annotations

import json
import math

import pytest
from mlx_quant import gates, ptq
from torch import nn

from mlx_core import StageFailed


def degrade(monkeypatch):
    """A quantizer that also wrecks the head (its weights zeroed): an injected quality loss."""
    real = ptq.torchao_quantize

    def broken(net, scheme):
        q, changed = real(net, scheme)
        head = q.model.head
        q.model.head = nn.Linear(head.in_features, head.out_features)
        nn.init.zeros_(q.model.head.weight)
        nn.init.zeros_(q.model.head.bias)
        return q, changed

    monkeypatch.setattr(ptq, "torchao_quantize", broken)


def test_a_degraded_scheme_fails_its_gate_and_the_verdict_is_recorded(run_inproc, tmp_path, monkeypatch):
    degrade(monkeypatch)
    with pytest.raises(StageFailed) as info:
        run_inproc("tinyseg", "export", ["train.steps=25", "quant.scheme=int8_dynamic", "quant.eval_examples=4",
                                         "quant.max_miou_drop=0.05"])  # fmt: skip
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("quant int8_dynamic: mIoU drop ")
    assert "exceeds the quality gate quant.max_miou_drop=0.05" in msg
    (run_json,) = (tmp_path / "runs" / "tinyseg").glob("*/run.json")
    m = json.loads(run_json.read_text())
    assert m["stages"]["export"]["status"] == "failed"
    v = m["records"]["quant_gate"]["int8_dynamic"]
    assert v["passed"] is False and v["metric"] == "mIoU" and v["limit"] == 0.05
    assert v["change"] == pytest.approx(v["fp32"] - v["quantized"]) and v["change"] > 0.05
    assert f"{v['change']:.4g}" in msg  # the line names the measured change
    report = json.loads((run_json.parent / "export" / "quant" / "quant_report.json").read_text())
    assert report["schemes"]["int8_dynamic"]["gate"] == v  # the evidence stays next to the verdict

    # the same wrecked model passes once the limit allows what it measured (max_drop overrides)
    ok = run_inproc("tinyseg", "export", ["train.steps=25", "quant.scheme=int8_dynamic", "quant.eval_examples=4",
                                          f"quant.max_drop={v['change'] + 0.01}"])  # fmt: skip
    g = ok.data["records"]["quant_gate"]["int8_dynamic"]
    assert g["passed"] is True and g["limit_key"] == "quant.max_drop"
    assert ok.data["stages"]["export"]["status"] == "completed"


def test_judge_perplexity_is_a_relative_rise_and_nan_fails():
    limits = gates.GateConfig()
    v = gates.judge("perplexity", 10.0, 10.4, limits, "gate.")
    assert v["passed"] is True and v["change"] == pytest.approx(0.04) and v["change_kind"] == "relative rise"
    v = gates.judge("perplexity", 10.0, 10.6, limits, "gate.")
    assert v["passed"] is False and v["limit_key"] == "gate.max_perplexity_rise"
    line = gates.failure_line("int8", v)
    assert line == "quant int8: perplexity relative rise 0.06 (relative) (10 -> 10.6) exceeds the quality gate " \
                   "gate.max_perplexity_rise=0.05"  # fmt: skip
    assert gates.judge("BLEU", 30.0, 27.5, limits, "quant.")["passed"] is False  # 2.5 points > 2.0
    assert gates.judge("BLEU", 30.0, 29.0, limits, "quant.")["passed"] is True
    assert gates.judge("AUC", 0.80, 0.77, limits, "gate.")["limit"] == 0.02
    assert gates.judge("mIoU", math.nan, math.nan, limits, "gate.")["passed"] is True  # nothing to score
    assert gates.judge("mIoU", 0.5, math.nan, limits, "gate.")["passed"] is False
    assert gates.judge("accuracy", 0.9, 1.0, limits, "gate.")["passed"] is True  # a gain never fails


def test_a_scheme_without_targets_is_recorded_unjudged():
    report = {"schemes": {"int8_dynamic": {"quality": {"max_abs_diff": 0.1}}}}
    verdicts = gates.judge_report(report, gates.GateFields(), "quant.")
    assert verdicts["int8_dynamic"]["passed"] is None and report["schemes"]["int8_dynamic"]["gate"]["metric"] is None


def test_gates_are_validated_options(run_inproc):
    from mlx_core import ConfigError

    with pytest.raises(ConfigError, match="max_miou_drop"):
        run_inproc("tinyseg", "data", ["quant.max_miou_drop=-1"])
