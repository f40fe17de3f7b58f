"""Quant benchmark: footprint, CPU latency and quality per precision.

Two models, both built here (no download):
  LM   an OPT-style causal LM (the plugin's default architecture, bigger), trained briefly in fp32
       on the plugin's generated corpus so perplexity means something, then loaded as fp32,
       bitsandbytes int8 (LLM.int8()), nf4, fp4, and torchao int8 weight-only / int8 dynamic.
  seg  a small fully convolutional segmentation net (stand-in for the segmentation plugin's model,
       which is not on main yet), trained briefly on generated colour-square masks; fp32 eager,
       torchao int8 (Linear-only: a conv net is left unchanged), and PT2E static int8 (XNNPACKQuantizer)
       lowered to an ExecuTorch .pte, timed against the fp32 .pte of the same graph.

Goals (issue 8): 8-bit <= 0.3x and 4-bit <= 0.2x of the fp32 bytes of the quantized Linear
weights; PT2E static int8 segmentation faster than fp32 ExecuTorch.

Prints a table, writes benchmarks/results/quant.json and quant.png. Timings are CPU wall times on
a machine shared with other jobs: noisy.

    python benchmarks/quant.py [--hidden 128 --layers 2 --ffn 512 --train-steps 80 --repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from goals import derive

RESULTS = Path(__file__).parent / "results"


def tensor_bytes(t: Any) -> int:
    """Bytes held by a tensor, looking inside tensor subclasses (torchao's int8 tensors, bnb params)."""
    import torch

    if hasattr(t, "__tensor_flatten__") and type(t) is not torch.nn.Parameter and type(t) is not torch.Tensor:
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, n)) for n in names)
    return t.numel() * t.element_size()


def linear_bytes(model: Any) -> dict[str, int]:
    """Linear weight bytes per module (+ bnb scales / quant states), for bnb, torchao and fp32 alike."""
    from mlx_quant.model import linear_weight_bytes
    from torch import nn

    out = linear_weight_bytes(model)  # bnb-aware
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) and type(mod.weight).__name__ not in ("Parameter", "Int8Params", "Params4bit"):
            out[name] = tensor_bytes(mod.weight)  # a torchao tensor subclass
    return out


def time_ms(fn: Any, *args: Any, repeats: int) -> dict[str, float]:
    """Best and median wall time of ``fn(*args)`` in ms after one warm-up call. The best of N is the
    headline figure: on a shared machine it is the run least disturbed by other jobs."""
    fn(*args)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - t0) * 1000)
    return {"latency_ms": min(times), "latency_median_ms": statistics.median(times)}


# --- LM -------------------------------------------------------------------------------------------
def bench_lm(args: argparse.Namespace, work: Path, log: Any) -> dict[str, Any]:
    import torch
    from mlx_quant.config import ModelConfig
    from mlx_quant.model import ByteTokenizer, create_default_model, load_model, quiet, windows
    from mlx_quant.ptq import torchao_quantize
    from mlx_quant.sample import generate_corpus
    from mlx_quant.train import lm_loss, perplexity

    quiet()
    base = ModelConfig(hidden_size=args.hidden, layers=args.layers, ffn_dim=args.ffn, heads=args.heads,
                       load_in_8bit=False)  # fmt: skip
    folder = create_default_model(work / "lm", base, seed=0)
    docs = generate_corpus(args.documents, seed=0)
    k = len(docs) * 3 // 4
    tok = ByteTokenizer()
    train_w = windows(docs[:k], tok, args.seq_len)
    eval_w = windows(docs[k:], tok, args.seq_len, args.eval_windows)
    trained = args.train_steps > 0
    if trained:
        t0 = time.perf_counter()
        model = load_model(folder, base, "cpu", quantized=False).train()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        g = torch.Generator().manual_seed(0)
        for step in range(args.train_steps):
            if step % 20 == 0:
                log(f"LM training step {step}/{args.train_steps}")
            idx = torch.randint(0, len(train_w), (8,), generator=g)
            loss = lm_loss(model, train_w[idx])
            loss.backward()
            opt.step()
            opt.zero_grad()
        model.save_pretrained(folder)
        log(f"LM: {args.train_steps} fp32 AdamW steps in {time.perf_counter() - t0:.1f}s, last loss {float(loss):.3f}")
        del model
    batch = eval_w[:4]
    variants: dict[str, Any] = {
        "fp32": base,
        "bnb int8": base.model_copy(update={"load_in_8bit": True}),
        "bnb nf4": base.model_copy(update={"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}),
        "bnb fp4": base.model_copy(update={"load_in_4bit": True, "bnb_4bit_quant_type": "fp4"}),
        "torchao int8 weight-only": "int8_weight_only",
        "torchao int8 dynamic": "int8_dynamic",
    }
    rows: dict[str, Any] = {}
    fp_lin: dict[str, int] = {}
    ref_logits = None
    for name, v in variants.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if isinstance(v, str):
                fp = load_model(folder, base, "cpu", quantized=False)
                model, _ = torchao_quantize(fp, v)
                del fp
            else:
                model = load_model(folder, v, "cpu", quantized=v is not base)
            load_s = time.perf_counter() - t0
            lin = linear_bytes(model)
            if name == "fp32":
                fp_lin = lin
            quantized = [n for n in lin if n in fp_lin and lin[n] < fp_lin[n]]
            with torch.no_grad():
                logits = model(input_ids=batch).logits.float()
                ref_logits = logits if ref_logits is None else ref_logits
                ms = time_ms(lambda mm, b: mm(input_ids=b), model, batch, repeats=args.repeats)
            ppl = perplexity(model, eval_w)
        total = sum(tensor_bytes(p) for p in model.parameters()) + sum(tensor_bytes(b) for b in model.buffers())
        rows[name] = {
            "linear_weight_bytes": sum(lin[n] for n in quantized) if quantized else sum(fp_lin.values()),
            "linear_weight_ratio": (sum(lin[n] for n in quantized) / sum(fp_lin[n] for n in quantized))
            if quantized else 1.0,
            "quantized_linear_layers": len(quantized),
            "footprint_bytes": int(total),
            "perplexity": ppl,
            "max_abs_logit_diff_vs_fp32": float((logits - ref_logits).abs().max()),
            **ms,
            "load_s": load_s,
        }  # fmt: skip
        log(f"LM {name}: {rows[name]}")
        del model
    fp = rows["fp32"]["footprint_bytes"]
    for r in rows.values():
        r["footprint_ratio"] = r["footprint_bytes"] / fp
    return {"config": {"hidden": args.hidden, "layers": args.layers, "ffn": args.ffn, "heads": args.heads,
                       "vocab": 256, "seq_len": args.seq_len, "eval_windows": int(len(eval_w)),
                       "latency_batch": list(batch.shape), "train_steps": args.train_steps, "trained": trained},
            "rows": rows}  # fmt: skip


def bench_goal5(args: argparse.Namespace, work: Path, log: Any) -> dict[str, Any]:
    """Issue 20 goal 5: latency at hidden >= 1024, batch 64 (random weights: latency only), cases
    interleaved: fp32 eager, bitsandbytes int8 (LLM.int8() through transformers, bitsandbytes' CPU
    backend), torchao int8 dynamic + torch.compile (and fp32 + torch.compile for reference)."""
    import torch
    from mlx_quant.config import ModelConfig
    from mlx_quant.model import create_default_model, load_model, quiet
    from mlx_quant.ptq import torchao_quantize

    quiet()
    h = args.goal_hidden
    base = ModelConfig(hidden_size=h, layers=1, ffn_dim=4 * h, heads=max(1, h // 64), load_in_8bit=False)
    folder = create_default_model(work / "lm-goal5", base, seed=0)
    batch = torch.randint(0, 256, (64, args.goal_seq_len), generator=torch.Generator().manual_seed(0))
    models: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models["fp32"] = load_model(folder, base, "cpu", quantized=False).eval()
        models["bnb int8"] = load_model(folder, base.model_copy(update={"load_in_8bit": True}), "cpu", quantized=True)
        q, _ = torchao_quantize(load_model(folder, base, "cpu", quantized=False).eval(), "int8_dynamic")
        compiled = {"torchao int8 dynamic + compile": torch.compile(q), "fp32 + compile": torch.compile(models["fp32"])}
        with torch.no_grad():
            ref = models["fp32"](input_ids=batch).logits
            for name, m in compiled.items():
                t0 = time.perf_counter()
                m(input_ids=batch)  # compiles
                log(f"goal 5: {name} compiled in {time.perf_counter() - t0:.1f}s")
            models.update(compiled)
            diffs = {n: float((m(input_ids=batch).logits - ref).abs().max()) for n, m in models.items()}
            times: dict[str, list[float]] = {n: [] for n in models}
            for _ in range(args.goal_repeats):  # interleaved: one call of each per round
                for name, m in models.items():
                    t0 = time.perf_counter()
                    m(input_ids=batch)
                    times[name].append((time.perf_counter() - t0) * 1000)
    rows = {n: {"latency_median_ms": statistics.median(t), "latency_ms": min(t), "max_abs_logit_diff_vs_fp32": diffs[n]}
            for n, t in times.items()}  # fmt: skip
    log(f"goal 5: {rows}")
    return {"config": {"hidden": h, "ffn": 4 * h, "layers": 1, "batch": list(batch.shape), "repeats": args.goal_repeats,
                       "threads": torch.get_num_threads()}, "rows": rows}  # fmt: skip


# --- segmentation ---------------------------------------------------------------------------------
def seg_net(width: int, classes: int) -> Any:
    from torch import nn

    def block(i: int, o: int, stride: int = 1) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU())

    class SegNet(nn.Module):
        """Encoder (stride 4) + 1x1 classifier + bilinear upsampling: an FCN in miniature."""

        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Sequential(block(3, width), block(width, width * 2, 2), block(width * 2, width * 2),
                                     block(width * 2, width * 4, 2), block(width * 4, width * 4))  # fmt: skip
            self.cls = nn.Conv2d(width * 4, classes, 1)

        def forward(self, x):
            y = self.cls(self.enc(x))
            return {"out": nn.functional.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)}

    return SegNet()


def seg_data(n: int, size: int, classes: int, seed: int) -> tuple[Any, Any]:
    import numpy as np
    import torch

    palette = np.random.default_rng(1234).uniform(0, 1, (classes, 3)).astype(np.float32)  # shared by all splits
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(n):
        y = np.zeros((size, size), dtype=np.int64)
        for c in range(1, classes):
            s = int(rng.integers(size // 6, size // 2))
            r0, c0 = rng.integers(0, size - s, 2)
            y[r0 : r0 + s, c0 : c0 + s] = c
        x = palette[y].transpose(2, 0, 1) + rng.normal(0, 0.15, (3, size, size)).astype(np.float32)
        xs.append(x.astype(np.float32))
        ys.append(y)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def bench_seg(args: argparse.Namespace, work: Path, log: Any) -> dict[str, Any]:
    import torch
    from mlx_quant.ptq import TensorOutput, executorch_runner, lower_executorch, pt2e_static, quality, torchao_quantize

    classes = 4
    torch.manual_seed(0)
    net = seg_net(args.seg_width, classes)
    x, y = seg_data(48, args.seg_size, classes, seed=0)
    xe, ye = seg_data(8, args.seg_size, classes, seed=1)
    t0 = time.perf_counter()
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    net.train()
    for step in range(args.seg_steps):
        idx = torch.arange(step * 8, step * 8 + 8) % len(x)
        loss = torch.nn.functional.cross_entropy(net(x[idx])["out"], y[idx])
        loss.backward()
        opt.step()
        opt.zero_grad()
    log(f"seg: {args.seg_steps} Adam steps in {time.perf_counter() - t0:.1f}s, last loss {float(loss):.3f}")
    m = TensorOutput(net.eval()).eval()
    one = (xe[:1],)
    evals = [((xe[i : i + 1],), ye[i : i + 1]) for i in range(len(xe))]
    calib = [((x[i : i + 1],), None) for i in range(args.calibration)]
    with torch.no_grad():
        ref = [m(*inp) for inp, _ in evals]
    targets = [t for _, t in evals]
    rows: dict[str, Any] = {}
    params = sum(p.numel() for p in net.parameters())
    fp_pte = work / "seg_fp32.pte"
    lower_executorch(m, one, fp_pte)
    run_fp = executorch_runner(fp_pte)
    with torch.no_grad():
        rows["fp32 eager"] = {"size_bytes": params * 4, **time_ms(m, *one, repeats=args.seg_repeats),
                              "quality": quality(ref, ref, targets)}  # fmt: skip
    rows["fp32 ExecuTorch"] = {"size_bytes": fp_pte.stat().st_size, **time_ms(run_fp, *one, repeats=args.seg_repeats),
                               "quality": quality(ref, [run_fp(*inp) for inp, _ in evals], targets)}  # fmt: skip
    for scheme in ("int8_weight_only", "int8_dynamic"):
        q, changed = torchao_quantize(m, scheme)
        with torch.no_grad():
            rows[f"torchao {scheme}"] = {
                "size_bytes": sum(tensor_bytes(p) for p in q.parameters()), "changed_layers": changed,
                **time_ms(q, *one, repeats=args.seg_repeats),
                "quality": quality(ref, [q(*inp) for inp, _ in evals], targets),
                "note": "torchao's int8 configs quantize nn.Linear only; this net is all conv",
            }  # fmt: skip
    t0 = time.perf_counter()
    q = pt2e_static(copy.deepcopy(m), one, calib)
    q_pte = work / "seg_int8_static.pte"
    lower_executorch(q, one, q_pte)
    run_q = executorch_runner(q_pte)
    rows["PT2E int8 static ExecuTorch"] = {
        "size_bytes": q_pte.stat().st_size, **time_ms(run_q, *one, repeats=args.seg_repeats),
        "quality": quality(ref, [run_q(*inp) for inp, _ in evals], targets), "convert_s": time.perf_counter() - t0,
    }  # fmt: skip
    fp_ms = rows["fp32 ExecuTorch"]["latency_ms"]
    for r in rows.values():
        r["size_ratio_vs_fp32_pte"] = r["size_bytes"] / rows["fp32 ExecuTorch"]["size_bytes"]
        r["speedup_vs_fp32_pte"] = fp_ms / r["latency_ms"]
        log(f"seg: {r}")
    return {"config": {"width": args.seg_width, "input": [1, 3, args.seg_size, args.seg_size], "classes": classes,
                       "params": params, "train_steps": args.seg_steps, "calibration": args.calibration,
                       "eval_images": len(evals)}, "rows": rows}  # fmt: skip


# --- output ---------------------------------------------------------------------------------------
def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lm, seg = res["lm"]["rows"], res["seg"]["rows"]
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    names = list(lm)
    x = range(len(names))
    panels = [("linear_weight_ratio", "Linear weight bytes / fp32"), ("perplexity", "perplexity (held-out text)"),
              ("latency_ms", f"CPU latency (best ms, batch 4x{res['lm']['config']['seq_len']})")]  # fmt: skip
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        vals = [lm[n][key] for n in names]
        ax.bar(x, vals, color="#4C72B0")
        ax.set_xticks(list(x), names, rotation=25, fontsize=7, ha="right")
        ax.set_title("LM: " + title, fontsize=9)
        if key == "latency_ms":
            ax.set_yscale("log")
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
    axes[0][0].axhline(0.3, color="#DD8452", ls="--", lw=0.8, label="8-bit goal 0.3")
    axes[0][0].axhline(0.2, color="#C44E52", ls="--", lw=0.8, label="4-bit goal 0.2")
    axes[0][0].legend(fontsize=7)
    names = list(seg)
    x = range(len(names))
    seg_panels = [("size_ratio_vs_fp32_pte", "size / fp32 .pte"), ("miou", "mIoU (generated masks)"),
                  ("latency_ms", "CPU latency (best ms, 1 image)")]  # fmt: skip
    for ax, (key, title) in zip(axes[1], seg_panels, strict=True):
        vals = [seg[n]["quality"].get("quantized", float("nan")) if key == "miou" else seg[n][key] for n in names]
        ax.bar(x, vals, color="#55A868")
        ax.set_xticks(list(x), names, rotation=25, fontsize=7, ha="right")
        ax.set_title("seg: " + title, fontsize=9)
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
    fig.suptitle("mlx quant benchmark (CPU, shared machine: timings are noisy)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def print_goals(goals: list[dict[str, Any]]) -> None:
    for g in goals:
        print(f"{g['goal']}: {g['ratio']} (target {g['target']}) " + ("met" if g["met"] else f"NOT met: {g['reason']}"))


def run_sections(args: argparse.Namespace, res: dict[str, Any], log: Any) -> None:
    """Run the sections not skipped; a skipped one keeps the figures of the run that measured it."""
    benches = {"lm": bench_lm, "seg": bench_seg, "goal5": bench_goal5}
    with tempfile.TemporaryDirectory() as tmp:
        for name, bench in benches.items():
            if name not in args.skip:
                res[name] = bench(args, Path(tmp), log)
    previous = args.out / "quant.json"
    old = json.loads(previous.read_text()) if args.skip and previous.exists() else {}
    for section in args.skip:
        if section in old:
            res[section] = old[section]
            res.setdefault("carried_over", []).append(section)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=512)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--documents", type=int, default=400)
    p.add_argument("--eval-windows", type=int, default=16)
    p.add_argument("--train-steps", type=int, default=80, help="fp32 LM training steps before quantizing (0: random)")
    p.add_argument("--seg-width", type=int, default=64)
    p.add_argument("--seg-size", type=int, default=128)
    p.add_argument("--seg-steps", type=int, default=30)
    p.add_argument("--calibration", type=int, default=8)
    p.add_argument("--repeats", type=int, default=10, help="timed LM forward passes (best of N reported)")
    p.add_argument("--seg-repeats", type=int, default=20, help="timed segmentation forward passes")
    p.add_argument("--goal-hidden", type=int, default=1024, help="issue 20 goal 5: hidden size of the latency case")
    p.add_argument("--goal-seq-len", type=int, default=16)
    p.add_argument("--goal-repeats", type=int, default=7)
    p.add_argument("--skip", choices=["lm", "seg", "goal5"], action="append", default=[])
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    res: dict[str, Any] = {"host": {"platform": platform.platform(), "python": sys.version.split()[0],
                                    "torch": torch.__version__, "threads": torch.get_num_threads()}}  # fmt: skip
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("transformers", "bitsandbytes", "torchao", "executorch", "peft"):
        try:
            res["host"][dist] = version(dist)
        except PackageNotFoundError:
            res["host"][dist] = None
    run_sections(args, res, console.log)

    if "lm" in res:
        t = Table(title=f"LM (OPT-style, {res['lm']['config']}")
        for c in (
            "precision",
            "Linear bytes ratio",
            "footprint MB",
            "perplexity",
            "max |dlogit|",
            "best ms",
            "median ms",
        ):
            t.add_column(c, justify="right")
        for n, r in res["lm"]["rows"].items():
            t.add_row(n, f"{r['linear_weight_ratio']:.3f}", f"{r['footprint_bytes'] / 1e6:.2f}", f"{r['perplexity']:.3f}",
                      f"{r['max_abs_logit_diff_vs_fp32']:.3g}", f"{r['latency_ms']:.1f}", f"{r['latency_median_ms']:.1f}")  # fmt: skip
        console.print(t)
    if "seg" in res:
        t = Table(title=f"segmentation stand-in ({res['seg']['config']})")
        for c in (
            "variant",
            "size KB",
            "size / fp32 .pte",
            "mIoU",
            "argmax agree",
            "best ms",
            "median ms",
            "speedup vs fp32 .pte (best)",
        ):
            t.add_column(c, justify="right")
        for n, r in res["seg"]["rows"].items():
            q = r["quality"]
            t.add_row(n, f"{r['size_bytes'] / 1e3:.1f}", f"{r['size_ratio_vs_fp32_pte']:.3f}", f"{q.get('quantized', float('nan')):.4f}",
                      f"{q.get('argmax_agreement', float('nan')):.4f}", f"{r['latency_ms']:.2f}", f"{r['latency_median_ms']:.2f}", f"{r['speedup_vs_fp32_pte']:.2f}")  # fmt: skip
        console.print(t)
    res["goals"] = derive("quant", res)  # benchmarks/goals.py: ratio, target, met, reason
    print_goals(res["goals"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quant.json").write_text(json.dumps(res, indent=2) + "\n")
    if "lm" in res and "seg" in res:
        plot(res, args.out / "quant.png")
    console.print(f"wrote {args.out / 'quant.json'}" + (" and quant.png" if "lm" in res and "seg" in res else ""))


if __name__ == "__main__":
    main()
