"""Post-training int8 quantization of any plugin's torch model.

Schemes:
  int8_weight_only  torchao ``Int8WeightOnlyConfig`` (nn.Linear weights in int8)
  int8_dynamic      torchao ``Int8DynamicActivationInt8WeightConfig`` (Linear, activations per token)
  int8_static       PT2E: ``torch.export`` -> ``prepare_pt2e(XNNPACKQuantizer, per-channel symmetric)`` ->
                    calibration on the plugin's own data -> ``convert_pt2e`` -> ExecuTorch .pte (XNNPACK)

How quant finds example inputs: through the core's cross-plugin data contract
(``mlx_core.contract``): the domain plugin names an ``examples`` function in its stage table,
and ``ctx.examples(data, n, split)`` returns ``(inputs, target)`` pairs, ``inputs`` a tuple of
batched tensors for ``model(*inputs)``; a plugin without one is refused with one line. Any
``torch.nn.Module`` works as the model; Hugging Face seq2seq models are scored on their own
``test``/``validation`` split (``seq2seq_examples``).

The model's output may be a tensor, a dict (``"out"``, ``"logits"`` or the first tensor value;
   torchvision segmentation models return ``{"out": ...}``) or a tuple (its first element).
   Integer targets shaped like the output without its class axis are scored as segmentation
   (mIoU, 255 = ignore); integer targets of shape ``[N]`` as classification (accuracy).
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import statistics
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mlx_core import DataError, StageFailed, atomic_write_json

Example = tuple[tuple[torch.Tensor, ...], Any]


# --- the contract -------------------------------------------------------------------------------
def examples(ctx: Any, data: Any, n: int, split: str) -> list[Example]:
    """Up to ``n`` examples ``(inputs, target)`` of the domain plugin's data (``ctx`` is that
    plugin's run context), through the core's contract; the core checks the answer's shape."""
    return [(tuple(inputs), target) for inputs, target in ctx.examples(data, n, split)]


def first_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        for key in ("out", "logits"):
            if isinstance(out.get(key), torch.Tensor):
                return out[key]
        for v in out.values():
            if isinstance(v, torch.Tensor):
                return v
    if isinstance(out, (tuple, list)) and out:
        return first_tensor(out[0])
    if hasattr(out, "logits"):
        return out.logits
    raise DataError(f"quant: the model returned {type(out).__name__}; expected a tensor, a dict or a tuple of tensors")


class TensorOutput(nn.Module):
    """The wrapped model with a single tensor output (what exporters and runtimes want)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return first_tensor(self.model(*args))


# --- quality -------------------------------------------------------------------------------------
def _miou(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    keep = target != 255
    p, t = pred[keep].long(), target[keep].long()
    conf = torch.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    inter = conf.diag().float()
    union = conf.sum(0).float() + conf.sum(1).float() - inter
    present = union > 0
    return float((inter[present] / union[present]).mean()) if present.any() else float("nan")


def quality(reference: list[torch.Tensor], outputs: list[torch.Tensor], targets: list[Any]) -> dict[str, Any]:
    """How far the quantized outputs are from fp32: logits differences, argmax agreement, and
    the task metric of both when the targets allow one."""
    ref = torch.cat([r.float() for r in reference])
    out = torch.cat([o.float() for o in outputs])
    res: dict[str, Any] = {
        "max_abs_diff": float((out - ref).abs().max()),
        "mean_abs_diff": float((out - ref).abs().mean()),
        "relative_error": float((out - ref).norm() / ref.norm().clamp_min(1e-12)),
    }
    if ref.dim() >= 2:
        res["argmax_agreement"] = float((out.argmax(1) == ref.argmax(1)).float().mean())
    if targets and all(isinstance(t, torch.Tensor) for t in targets):
        tgt = torch.cat(targets)
        if not tgt.is_floating_point() and ref.dim() == 4 and tgt.shape == ref.shape[:1] + ref.shape[2:]:
            c = ref.shape[1]
            res["metric"] = "mIoU"
            res["fp32"] = _miou(ref.argmax(1), tgt, c)
            res["quantized"] = _miou(out.argmax(1), tgt, c)
        elif not tgt.is_floating_point() and ref.dim() == 2 and tgt.shape == ref.shape[:1]:
            res["metric"] = "accuracy"
            res["fp32"] = float((ref.argmax(1) == tgt).float().mean())
            res["quantized"] = float((out.argmax(1) == tgt).float().mean())
        if "metric" in res:
            res["delta"] = res["quantized"] - res["fp32"]
    return res


def _median_ms(fn: Any, args: tuple, repeats: int = 3) -> float:
    fn(*args)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def state_dict_bytes(model: nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


# --- the schemes ---------------------------------------------------------------------------------
def contiguous_(net: nn.Module) -> None:
    """Parameters and buffers in the default (NCHW-contiguous) layout. A domain plugin's own
    ExecuTorch export can leave conv weights channels-last; XNNPACK's layout pass then sees a
    constant already tagged NHWC used in NCHW elsewhere and refuses the quantized graph."""
    with torch.no_grad():
        for t in [*net.parameters(), *net.buffers()]:
            if not t.is_contiguous():
                t.data = t.data.contiguous()


def torchao_quantize(net: nn.Module, scheme: str) -> tuple[nn.Module, int]:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_

    config = Int8WeightOnlyConfig() if scheme == "int8_weight_only" else Int8DynamicActivationInt8WeightConfig()
    q = copy.deepcopy(net)
    before = {n: type(m.weight) for n, m in q.named_modules() if isinstance(m, nn.Linear)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_(q, config)
    changed = sum(1 for n, m in q.named_modules() if n in before and type(m.weight) is not before[n])
    return q, changed


def pt2e_static(net: nn.Module, example: tuple, calibration: list[Example]) -> nn.Module:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = torch.export.export(net, example).module()
        quantizer = XNNPACKQuantizer()
        quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True))
        prepared = prepare_pt2e(graph, quantizer)
        with torch.no_grad():
            for inputs, _ in calibration:
                prepared(*inputs)
        return convert_pt2e(prepared)


def lower_executorch(net: nn.Module, example: tuple, path: Path) -> None:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(net, example)
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
    path.write_bytes(lowered.buffer)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """ExecuTorch's C++ runtime logs CPU probing to fd 2 when it starts; keep the terminal clean."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _first_line(exc: BaseException) -> str:
    """The exception and its cause, one line (ExecuTorch wraps a pass's AssertionError in a bare Exception)."""
    parts = []
    while exc is not None and len(parts) < 2:
        text = (str(exc).strip().splitlines() or [""])[0]
        parts.append(f"{type(exc).__name__}: {text}"[:240])
        exc = exc.__cause__
    return " <- ".join(parts)


def executorch_runner(path: Path) -> Any:
    from executorch.runtime import Runtime

    with quiet_stderr():
        method = Runtime.get().load_program(str(path)).load_method("forward")

    def run(*args: torch.Tensor) -> torch.Tensor:
        with quiet_stderr():
            return method.execute(list(args))[0]

    return run


# --- seq2seq models (the translation plugin's convention) -----------------------------------------
def is_seq2seq(model: nn.Module) -> bool:
    return bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False)) and hasattr(model, "generate")


def _get(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, dict) else getattr(data, key, None)


def seq2seq_examples(data: Any, n: int) -> tuple[list[tuple[list[int], list[int]]], Any]:
    """Up to ``n`` (input_ids, label ids) pairs of the held-out split and the tokenizer: the data
    object holds ``tokenized`` (splits ``test``/``validation``/``eval``/``train`` with ``input_ids``
    and ``labels``) and ``tokenizer`` (with ``batch_decode``)."""
    tok, splits = _get(data, "tokenizer"), _get(data, "tokenized")
    if tok is None or splits is None or not hasattr(tok, "batch_decode"):
        raise DataError(
            f"quant: a seq2seq model's data ({type(data).__name__}) needs 'tokenized' splits and a 'tokenizer' "
            "with batch_decode"
        )
    for name in ("test", "validation", "eval", "train"):
        ds = splits[name] if hasattr(splits, "keys") and name in splits.keys() else None
        if ds is not None and len(ds) > 0:
            rows = ds.select(range(min(n, len(ds)))) if hasattr(ds, "select") else ds[:n]
            out = [(list(r["input_ids"]), [t for t in r["labels"] if t >= 0]) for r in rows]
            return out, tok
    raise DataError(f"quant: the tokenized splits of {type(data).__name__} are empty")


def _bleu(hyps: list[str], refs: list[str]) -> tuple[str, float]:
    try:
        import sacrebleu
    except ImportError:  # the translation plugin brings sacrebleu; without it: exact-match rate
        return "exact match", float(np.mean([h.strip() == r.strip() for h, r in zip(hyps, refs, strict=True)]))
    return "BLEU", float(sacrebleu.corpus_bleu(hyps, [refs]).score)


def quantize_seq2seq(ctx, model: nn.Module, data: Any, schemes: list[str], n_eval: int, sub: tuple[str, ...],
                     gate: Any, gate_prefix: str) -> dict[str, Any]:  # fmt: skip
    """torchao int8 of an encoder-decoder's Linear layers; quality = BLEU of greedy translations."""
    if "int8_static" in schemes and len(schemes) > 1:  # e.g. source.schemes left at its default (all three)
        ctx.note(f"int8_static (PT2E -> ExecuTorch) skipped: {type(model).__name__} is a seq2seq model that "
                 "translates with generate(), not a single exported forward")  # fmt: skip
        schemes = [s for s in schemes if s != "int8_static"]
    if "int8_static" in schemes:
        from mlx_core import ConfigError

        raise ConfigError(
            "quant scheme int8_static (PT2E -> ExecuTorch) needs a single-forward model; this is a seq2seq "
            f"{type(model).__name__} that translates with generate(): use int8_dynamic or int8_weight_only"
        )
    net = copy.deepcopy(model).cpu().float().eval()
    pairs, tok = seq2seq_examples(data, n_eval)
    refs = tok.batch_decode([lab for _, lab in pairs], skip_special_tokens=True)

    @torch.no_grad()
    def translate(m: nn.Module) -> tuple[list[list[int]], float]:
        t0, outs = time.perf_counter(), []
        for ids, lab in pairs:
            g = m.generate(input_ids=torch.tensor([ids]), max_new_tokens=len(lab) + 8, num_beams=1, do_sample=False)
            outs.append(g[0].tolist())
        return outs, (time.perf_counter() - t0) * 1000 / len(pairs)

    fp_out, fp_ms = translate(net)
    fp_text = tok.batch_decode(fp_out, skip_special_tokens=True)
    metric, fp_score = _bleu(fp_text, refs)
    fp32_bytes = state_dict_bytes(net)
    report: dict[str, Any] = {"kind": "seq2seq", "model_class": type(model).__name__, "eval_examples": len(pairs),
                              "layers": {"linear": sum(isinstance(m, nn.Linear) for m in net.modules())},
                              "fp32": {"state_dict_bytes": fp32_bytes, "generate_ms_per_example": fp_ms, metric: fp_score},
                              "schemes": {}}  # fmt: skip
    for scheme in schemes:
        t0 = time.perf_counter()
        with ctx.progress(f"torchao {scheme} ({type(model).__name__})", total=None):
            q, changed = torchao_quantize(net, scheme)
            q_out, q_ms = translate(q)
            with ctx.atomic_path(*sub, f"{scheme}.pt") as tmp:
                torch.save(q.state_dict(), tmp)
        path = ctx.path(*sub, f"{scheme}.pt")
        q_text = tok.batch_decode(q_out, skip_special_tokens=True)
        _, q_score = _bleu(q_text, refs)
        size = path.stat().st_size
        entry = {"format": "torch state_dict (torchao tensors)", "quantized_linear_layers": changed, "size_bytes": size,
                 "size_ratio": size / fp32_bytes, "baseline": "fp32 state_dict", "generate_ms_per_example": q_ms,
                 "fp32_generate_ms_per_example": fp_ms, "seconds": time.perf_counter() - t0,
                 "quality": {"metric": metric, "fp32": fp_score, "quantized": q_score, "delta": q_score - fp_score,
                             "identical_outputs": float(np.mean([a == b for a, b in zip(fp_out, q_out, strict=True)]))},
                 "path": str(path.relative_to(ctx.run_dir))}  # fmt: skip
        report["schemes"][scheme] = entry
        ctx.add_artifact(
            path, kind="quantized", scheme=scheme, size_ratio=entry["size_ratio"], quality=entry["quality"]
        )
        ctx.log_metrics({f"{scheme}_size_ratio": entry["size_ratio"], f"{scheme}_{metric}_delta": q_score - fp_score,
                         f"{scheme}_identical_outputs": entry["quality"]["identical_outputs"]})  # fmt: skip
    from .gates import enforce, judge_report

    verdicts = judge_report(report, gate, gate_prefix)
    path = atomic_write_json(ctx.path(*sub, "quant_report.json"), report)
    ctx.add_artifact(path, kind="report", plugin="quant")
    enforce(ctx, verdicts)  # after the report is written: a failed gate leaves its evidence
    return report


# --- one call for both entry points --------------------------------------------------------------
def quantize_model(ctx, model: nn.Module, data: Any, schemes: list[str], n_calib: int, n_eval: int, sub: tuple[str, ...],
                   fp32_pte: Path | None = None, source_ctx: Any = None, gate: Any = None,
                   gate_prefix: str = "quant.") -> dict[str, Any]:  # fmt: skip
    """Quantize ``model`` with each scheme; write artifacts under ``ctx.path(*sub)``, register them,
    and return the report (size ratio and quality delta per scheme). ``source_ctx`` is the domain
    plugin's context when it is not ``ctx`` (a ``source.run``): its examples are asked of it."""
    from .gates import GateFields

    gate = gate if gate is not None else GateFields()
    if is_seq2seq(model):
        return quantize_seq2seq(ctx, model, data, schemes, n_eval, sub, gate, gate_prefix)
    net = TensorOutput(copy.deepcopy(model).cpu().float().eval()).eval()
    contiguous_(net)
    calib = examples(source_ctx or ctx, data, n_calib, "calibration")
    evals = examples(source_ctx or ctx, data, n_eval, "eval")
    example = evals[0][0]
    with torch.no_grad():
        reference = [net(*inputs) for inputs, _ in evals]
        fp32_ms = _median_ms(net, example)
    targets = [t for _, t in evals]
    fp32_bytes = state_dict_bytes(net)
    layers = {"linear": sum(isinstance(m, nn.Linear) for m in net.modules()),
              "conv": sum(isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d) for m in net.modules())}  # fmt: skip
    report: dict[str, Any] = {"input_shape": [list(t.shape) for t in example], "output_shape": list(reference[0].shape),
                              "calibration_examples": len(calib), "eval_examples": len(evals), "layers": layers,
                              "fp32": {"state_dict_bytes": fp32_bytes, "eager_latency_ms": fp32_ms}, "schemes": {}}  # fmt: skip
    for scheme in schemes:
        t0 = time.perf_counter()
        if scheme in ("int8_weight_only", "int8_dynamic"):
            with ctx.progress(f"torchao {scheme}", total=None):
                q, changed = torchao_quantize(net, scheme)
                with torch.no_grad():
                    outputs = [q(*inputs) for inputs, _ in evals]
                    ms = _median_ms(q, example)
                with ctx.atomic_path(*sub, f"{scheme}.pt") as tmp:
                    torch.save(q.state_dict(), tmp)
            path = ctx.path(*sub, f"{scheme}.pt")
            size = path.stat().st_size
            entry = {"format": "torch state_dict (torchao tensors)", "quantized_linear_layers": changed,
                     "size_bytes": size, "size_ratio": size / fp32_bytes, "baseline": "fp32 state_dict",
                     "eager_latency_ms": ms, "fp32_latency_ms": fp32_ms, "seconds": time.perf_counter() - t0}  # fmt: skip
            if changed == 0:
                entry["note"] = (f"torchao's int8 schemes quantize nn.Linear layers only; this model has {layers['linear']} "
                                 f"Linear and {layers['conv']} conv layers, so nothing changed")  # fmt: skip
        else:
            with ctx.progress("PT2E static int8 (XNNPACK) -> ExecuTorch", total=None):
                try:
                    q = pt2e_static(net, example, calib)
                except Exception as exc:  # torch.export / PT2E limits of the model, said in one line
                    raise StageFailed(f"quant int8_static: PT2E quantization of {type(model).__name__} failed: "
                                      f"{_first_line(exc)}") from exc  # fmt: skip
                with torch.no_grad():
                    eager_q = [q(*inputs) for inputs, _ in evals]
                try:
                    with ctx.atomic_path(*sub, "int8_static.pte") as tmp:
                        lower_executorch(q, example, tmp)
                except Exception as exc:  # an XNNPACK lowering limit, said in one line
                    raise StageFailed(f"quant int8_static: ExecuTorch XNNPACK lowering of the PT2E-quantized "
                                      f"{type(model).__name__} failed: {_first_line(exc)}") from exc  # fmt: skip
                path = ctx.path(*sub, "int8_static.pte")
                if fp32_pte is None or not fp32_pte.is_file():
                    with ctx.atomic_path(*sub, "fp32.pte") as tmp:
                        lower_executorch(net, example, tmp)
                    fp32_pte = ctx.path(*sub, "fp32.pte")
                    ctx.add_artifact(
                        fp32_pte, kind="model", format="executorch", precision="fp32", role="quant baseline"
                    )
                run_q, run_fp = executorch_runner(path), executorch_runner(fp32_pte)
                outputs = [run_q(*inputs) for inputs, _ in evals]
                ms, fp_ms = _median_ms(run_q, example), _median_ms(run_fp, example)
            size, fp_size = path.stat().st_size, fp32_pte.stat().st_size
            entry = {"format": "executorch .pte (XNNPACK, int8 static)", "size_bytes": size, "size_ratio": size / fp_size,
                     "baseline": f"fp32 .pte ({fp32_pte.name}, {fp_size} bytes)", "executorch_latency_ms": ms,
                     "fp32_executorch_latency_ms": fp_ms, "speedup_vs_fp32_pte": fp_ms / ms if ms else None,
                     "pt2e_eager_vs_pte_max_abs_diff": float(max((a - b).abs().max() for a, b in zip(eager_q, outputs, strict=True))),
                     "seconds": time.perf_counter() - t0}  # fmt: skip
        entry["quality"] = quality(reference, outputs, targets)
        entry["path"] = str(path.relative_to(ctx.run_dir))
        report["schemes"][scheme] = entry
        ctx.add_artifact(path, kind="quantized", scheme=scheme, size_ratio=entry["size_ratio"],
                         quality=entry["quality"])  # fmt: skip
        q_metric = entry["quality"]
        metrics = {f"{scheme}_size_ratio": entry["size_ratio"], f"{scheme}_max_abs_diff": q_metric["max_abs_diff"]}
        if "delta" in q_metric:
            metrics[f"{scheme}_{q_metric['metric']}_delta"] = q_metric["delta"]
        if "argmax_agreement" in q_metric:
            metrics[f"{scheme}_argmax_agreement"] = q_metric["argmax_agreement"]
        ctx.log_metrics(metrics)
        if not np.isfinite(q_metric["max_abs_diff"]):
            raise StageFailed(f"quant {scheme}: the quantized model produced non-finite outputs")
    from .gates import enforce, judge_report

    verdicts = judge_report(report, gate, gate_prefix)
    path = atomic_write_json(ctx.path(*sub, "quant_report.json"), report)
    ctx.add_artifact(path, kind="report", plugin="quant")
    enforce(ctx, verdicts)  # after the report is written: a failed gate leaves its evidence
    return report


def domain_fp32_pte(ctx) -> Path | None:
    """An fp32 ExecuTorch file the domain plugin already exported (the int8_static baseline), unless
    the plugin rewrote the network it exported (segmentation's padding-tap rewrite turns dilated 3x3
    convolutions into 1x1s at the fixed export size): int8 quantizes the model stage's network, so
    its baseline must be that network too, lowered here, or the size and speed ratios compare two
    different programs."""
    if ctx.manifest.data.get("records", {}).get("padding_tap_rewrites"):
        return None
    for a in reversed(ctx.manifest.artifacts("model")):
        if a.get("format") == "executorch" and a["path"].endswith(".pte"):
            p = ctx.run_dir / a["path"]
            if p.is_file():
                return p
    return None


def require_torch_module(model: Any, plugin: str) -> nn.Module:
    """``model`` when it is a torch module; otherwise one line saying what the plugin handed over
    (recsys hands a dict and trains its own sharded model, custom_ops' Paddle path a paddle Layer)."""
    if isinstance(model, nn.Module):
        return model
    found = type(model).__module__ + "." + type(model).__qualname__
    if isinstance(model, dict):
        found = f"dict with keys {sorted(map(str, model))}"
    raise DataError(
        f"quant: {plugin}'s model stage hands a {found}, not a torch nn.Module; quant quantizes torch modules only"
    )


def quantize_into_export(ctx, data: Any, model: nn.Module, opts: Any) -> dict[str, Any]:
    """The hook-wrapper entry point: add ``export/quant/<scheme>`` to another plugin's export."""
    model = require_torch_module(model, ctx.plugin)
    ctx.log(f"[quant] post-training {opts.scheme} of {ctx.plugin}'s model")
    report = quantize_model(ctx, model, data, [opts.scheme], opts.calibration_batches, opts.eval_examples,
                            ("export", "quant"), fp32_pte=domain_fp32_pte(ctx), gate=opts)  # fmt: skip
    ctx.record("quant", {"scheme": opts.scheme, **report["schemes"][opts.scheme]})
    return report["schemes"][opts.scheme]
