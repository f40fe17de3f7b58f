"""Scaling of the plugins on the shared engine (mlx_torch, pytorch-ignite), and the engine's
overhead against the hand-written loop it replaced.

    .venv/bin/python benchmarks/scaling.py            # every plugin in PLUGINS, 1 and 2 processes; overhead
    .venv/bin/python benchmarks/scaling.py --plugins segmentation --repeats 7 --steps 8 --image-size 96
    .venv/bin/python benchmarks/scaling.py --plugins multimodal --no-overhead   # only mlx-multimodal installed

1. samples/s of `mlx run PLUGIN train` for each row of PLUGINS (segmentation, custom_ops'
   torch RedNet, multimodal's reduced FLAVA, recsys, translation) at 1 process (2 threads) and at `--nproc 2` (1 thread each): the same 2 threads
   in both, so the ratio shows the cost of the launcher and the collectives (gloo all-reduce, two
   interpreters), not more cores. Read from run.json (segmentation, custom_ops, multimodal: records.engine.samples_per_s,
   all ranks' training samples per second of training time, evaluation excluded; recsys and
   translation: their own samples/s metric). Cases interleaved over --proc-repeats; the median.
   PLUGINS is the table to extend: overrides, thread key, run.json metric, goal.
2. The step time of the engine (an Ignite Engine running mlx_torch's training step, with the
   handlers fit attaches per iteration) against a copy of segmentation's old hand-written loop,
   on the same model, the same batches, in one process; cases interleaved, median and min of
   repeats. Goal: engine <= 1.05 x the old loop.

Writes benchmarks/results/scaling.json and benchmarks/results/scaling.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
console = Console(stderr=True)
IGNORE = 255


# --- 1. processes ------------------------------------------------------------------------------
THREADS_TOTAL = 2
RECSYS_TABLES = (
    "model.tables=["
    '{name="product_table",embedding_dim=16,num_embeddings=2048,feature_names=["product","history"]},'
    '{name="user_table",embedding_dim=16,num_embeddings=1024,feature_names=["user"]},'
    '{name="category_table",embedding_dim=16,num_embeddings=64,feature_names=["category"]}]'
)


@dataclass(frozen=True)
class Plugin:
    """One row of the scaling table: how to run a tiny `mlx run PLUGIN train` and read its speed."""

    sets: list[str]  # config overrides (the size of the run)
    thread_key: str | None  # the plugin's per-process thread count key (None: OMP_NUM_THREADS alone)
    metric: str  # dotted path into run.json holding the job's training samples/s (all ranks)
    target: float | None  # goal for samples/s at 2 processes / 1 process; None: informational


def _segmentation_sets(args: argparse.Namespace) -> list[str]:
    return [f"data.image_size={args.image_size}", f"data.sample_train={args.train_images}", "data.sample_val=4",
            f"train.batch_size={args.batch}", f"train.epochs={args.epochs}"]  # fmt: skip


#: plugin -> how to run it; extend it when a plugin learns to distribute
PLUGINS: dict[str, Plugin] = {
    "segmentation": Plugin([], "train.threads", "records.engine.samples_per_s", None),  # sets from the CLI args
    "custom_ops": Plugin(
        [
            "model.backend=torch",
            "model.impl=composite",
            "data.sample_classes=2",
            "data.sample_per_class=32",
            "data.sample_valid_per_class=4",
            "model.width=4",
            "model.stem_channels=8",
            "model.group_channels=4",
            "model.kernel_size=3",
            "train.epochs=1",
            "train.batch_size=8",
        ],
        "train.threads",
        "records.engine.samples_per_s",
        None,
    ),  # fmt: skip
    "recsys": Plugin(
        [
            "data.examples=12000",
            "data.batch_size=256",
            RECSYS_TABLES,
            "model.dense_arch=[32]",
            "model.over_arch=[32]",
            "train.epochs=1",
            "train.allow_oversubscribe=true",
        ],
        "train.threads",
        "metrics.examples_per_s",
        0.8,
    ),  # fmt: skip
    "multimodal": Plugin(
        [
            "data.n_train=256",
            "data.n_val=32",
            "train.epochs=1",
            "train.batch_size=32",
        ],
        "train.threads",
        "records.engine.samples_per_s",
        None,
    ),  # fmt: skip
    "quant": Plugin(
        [
            "model.hidden_size=64",
            "model.ffn_dim=128",
            "model.layers=2",
            "data.documents=64",
            "data.seq_len=32",
            "data.max_eval_windows=4",
            "train.epochs=1",
            "train.batch_size=8",
        ],
        None,  # no thread key: torch follows OMP_NUM_THREADS (2, or 1 per process under --nproc 2)
        "records.engine.samples_per_s",
        None,
    ),  # fmt: skip
    "translation": Plugin(
        [
            "data.size=400",
            "data.vocab_size=200",
            "model.d_model=64",
            "model.d_ff=128",
            "model.num_heads=2",
            "model.num_layers=2",
            "train.epochs=2",
            "train.batch_size=32",
            "train.eval_samples=8",
            "train.generation_max_length=8",
        ],
        "train.num_threads",
        "metrics.train_examples_per_s",
        0.8,
    ),  # fmt: skip
}


def _dig(manifest: dict, path: str):
    for key in path.split("."):
        manifest = manifest[key]
    return manifest


def run_processes(plugin: str, nproc: int, args: argparse.Namespace, runs: Path) -> dict:
    spec = PLUGINS[plugin]
    threads = THREADS_TOTAL // nproc
    sets = [*(spec.sets or _segmentation_sets(args)), *([f"{spec.thread_key}={threads}"] if spec.thread_key else [])]
    cmd = [sys.executable, "-m", "mlx_core", "run", plugin, "train", "--runs-dir", str(runs),
           "--device", "cpu", *[a for s in sets for a in ("--set", s)]]  # fmt: skip
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    (manifest,) = runs.glob(f"{plugin}/*/run.json")
    m = json.loads(manifest.read_text())
    world = m.get("launch", {}).get("world_size") or m.get("records", {}).get("engine", {}).get("world_size") or nproc
    return {"plugin": plugin, "nproc": nproc, "threads_per_process": threads,
            "samples_per_s": float(_dig(m, spec.metric)), "wall_s": wall, "world_size": world}  # fmt: skip


def processes(args: argparse.Namespace) -> list[dict]:
    """Every plugin at 1 and 2 processes, cases interleaved over the repeats; one row per case
    (median samples/s, min beside it when repeated)."""
    runs: dict[tuple[str, int], list[dict]] = {(p, n): [] for p in args.plugins for n in (1, 2)}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.proc_repeats):
            for plugin in args.plugins:
                for n in (1, 2):
                    console.print(f"repeat {r + 1}: {plugin} --nproc {n}")
                    runs[(plugin, n)].append(run_processes(plugin, n, args, Path(tmp) / f"{plugin}-{n}-{r}"))
    rows = []
    for (_, _), cases in runs.items():
        row = dict(cases[0])
        row["samples_per_s"] = statistics.median(c["samples_per_s"] for c in cases)
        row["wall_s"] = statistics.median(c["wall_s"] for c in cases)
        if len(cases) > 1:
            row["min_samples_per_s"] = min(c["samples_per_s"] for c in cases)
            row["repeats"] = len(cases)
        rows.append(row)
    return rows


def scaling_goals(procs: list[dict]) -> list[dict]:
    goals = []
    for plugin in dict.fromkeys(r["plugin"] for r in procs):
        one, two = (next(r for r in procs if r["plugin"] == plugin and r["nproc"] == n) for n in (1, 2))
        ratio, target = two["samples_per_s"] / one["samples_per_s"], PLUGINS[plugin].target
        if target is None:
            goals.append({"goal": f"{plugin} samples/s at 2 processes / 1 process, 2 threads total (informational: "
                          "shows DDP's cost, not more cores)", "ratio": ratio, "target": None, "met": None})  # fmt: skip
            continue
        goal = {"goal": f"{plugin}: 2 processes x 1 thread keep >= {target}x the samples/s of 1 process x 2 threads",
                "ratio": ratio, "target": f">= {target}", "met": ratio >= target}  # fmt: skip
        if not goal["met"]:
            goal["reason"] = (
                "per-step collectives (gloo all-reduce) on a shared 2-core machine cost more than the split saves"
            )
        goals.append(goal)
    return goals


# --- 2. the engine against the old loop ------------------------------------------------------
def old_loop(model, opt, batches, lr: float, power: float, total: int, aux_weight: float = 0.5) -> None:
    """segmentation's hand-written training loop before mlx_torch (kept here only to compare)."""
    model.train()
    step = 0
    for x, y in batches:
        current = lr * (1 - step / total) ** power
        for group in opt.param_groups:
            group["lr"] = current
        x = x.contiguous(memory_format=torch.channels_last)
        out = model(x)
        loss = F.cross_entropy(out["out"], y, ignore_index=IGNORE)
        if "aux" in out and aux_weight > 0:
            loss = loss + aux_weight * F.cross_entropy(out["aux"], y, ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = loss.item()
        if value != value:
            raise RuntimeError("diverged")
        step += 1


def engine_loop(model, opt, batches, cfg, total: int) -> None:
    """The same batches through an Ignite Engine running mlx_torch's step (as fit builds it)."""
    from ignite.engine import Engine, Events
    from mlx_segmentation.train import prepare, seg_loss

    from mlx_torch import schedules
    from mlx_torch.checkpoints import Step
    from mlx_torch.steps import StepState, make_train_step

    sched = schedules.build(cfg, opt, total)
    step = make_train_step(model, opt, sched, lambda net, b: seg_loss(net(b[0]), b[1], 0.5), prepare, cfg, "cpu",
                           Step(), StepState(), batch_size_of=lambda b: len(b[0]))  # fmt: skip
    trainer = Engine(step)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: None)  # fit's progress-bar advance
    trainer.run(batches, max_epochs=1)


def overhead(args: argparse.Namespace) -> dict:
    from mlx_segmentation.model import build

    from mlx_torch.config import EngineTrainConfig

    torch.set_num_threads(2)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(args.batch, 3, args.image_size, args.image_size, generator=g),
                torch.randint(0, 21, (args.batch, args.image_size, args.image_size), generator=g))
               for _ in range(args.steps)]  # fmt: skip
    base = build("deeplabv3_mobilenet_v3_large", 21, False).to(memory_format=torch.channels_last)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    cfg = EngineTrainConfig()
    times: dict[str, list[float]] = {"old loop": [], "ignite engine": []}

    def fresh():
        base.load_state_dict(state)
        return base, torch.optim.AdamW(base.parameters(), lr=3e-3, weight_decay=1e-4)

    for rep in range(args.repeats + 1):  # the first round warms up both and is dropped
        order = ["old loop", "ignite engine"] if rep % 2 == 0 else ["ignite engine", "old loop"]
        for case in order:
            model, opt = fresh()
            t0 = time.perf_counter()
            if case == "old loop":
                old_loop(model, opt, batches, 3e-3, 0.9, args.steps)
            else:
                engine_loop(model, opt, batches, cfg, args.steps)
            if rep > 0:
                times[case].append((time.perf_counter() - t0) / args.steps * 1000)
    rows = {case: {"median_ms": statistics.median(t), "min_ms": min(t), "repeats": len(t)} for case, t in times.items()}
    return rows


def chart(procs: list[dict], steps: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    plugins = list(dict.fromkeys(r["plugin"] for r in procs))
    for offset, n in ((-0.2, 1), (0.2, 2)):
        a1.bar([i + offset for i in range(len(plugins))],
               [next(r["samples_per_s"] for r in procs if r["plugin"] == p and r["nproc"] == n) for p in plugins],
               0.4, label=f"{n} proc x {THREADS_TOTAL // n} thr")  # fmt: skip
    a1.set_xticks(range(len(plugins)), plugins)
    a1.set_yscale("log")
    a1.set_ylabel("training samples / s")
    a1.set_title("1 vs 2 processes (2 threads total)")
    a1.legend(fontsize=8)
    names = list(steps)
    a2.bar(names, [steps[n]["median_ms"] for n in names], label="median")
    a2.scatter(names, [steps[n]["min_ms"] for n in names], color="k", zorder=3, label="min")
    a2.set_ylabel("ms per training step")
    a2.set_title("engine vs hand-written loop (same batches)")
    a2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--train-images", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--steps", type=int, default=6, help="steps per repeat of the overhead comparison")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-processes", action="store_true", help="only the overhead comparison")
    ap.add_argument(
        "--no-overhead", action="store_true", help="only the processes (the overhead comparison needs mlx-segmentation)"
    )
    ap.add_argument(
        "--plugins", nargs="+", default=list(PLUGINS), choices=list(PLUGINS), help="plugins timed at 1 and 2 processes"
    )
    ap.add_argument("--proc-repeats", type=int, default=1, help="runs per plugin and process count (interleaved)")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    steps = {} if args.no_overhead else overhead(args)
    procs = [] if args.no_processes else processes(args)

    goals = []
    if steps:
        ratio = steps["ignite engine"]["median_ms"] / steps["old loop"]["median_ms"]
        goals = [{"goal": "Ignite engine step time <= 1.05 x the hand-written loop's (segmentation, same batches)",
                  "ratio": ratio, "target": "<= 1.05", "met": ratio <= 1.05}]  # fmt: skip
        if not goals[0]["met"]:
            goals[0]["reason"] = (
                "the engine's per-step work (Ignite event dispatch, schedule step, loss check) on a shared 2-core box"
            )
    rows = scaling_goals(procs)
    goals += [g for g in rows if g["met"] is not None]
    informational = [g for g in rows if g["met"] is None]  # not goals: kept out of the README's Measured table

    table = Table(title=f"engine scaling and overhead (load avg {load:.1f})")
    for col in ("case", "median", "min", "repeats / wall"):
        table.add_column(col)
    for name, r in steps.items():
        table.add_row(f"step: {name}", f"{r['median_ms']:.1f} ms", f"{r['min_ms']:.1f} ms", str(r["repeats"]))
    for r in procs:
        low = f"{r['min_samples_per_s']:.2f}" if "min_samples_per_s" in r else ""
        table.add_row(f"{r['plugin']} --nproc {r['nproc']} ({r['threads_per_process']} thr each)",
                      f"{r['samples_per_s']:.2f} samples/s", low, f"{r['wall_s']:.0f} s")  # fmt: skip
    Console().print(table)
    for g in goals:
        Console().print(f"{g['goal']}: {g['ratio']:.3f}" + ("" if g["met"] is None else f" (met: {g['met']})"))

    RESULTS.mkdir(exist_ok=True)
    out = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "load_avg_before": load, "note": "2 cores shared with other jobs: timings are noisy"},
        "args": vars(args), "goals": goals, "informational": informational, "steps": steps, "processes": procs,
    }  # fmt: skip
    (RESULTS / "scaling.json").write_text(json.dumps(out, indent=1) + "\n")
    chart(procs, steps, RESULTS / "scaling.png")
    console.print(f"wrote {RESULTS / 'scaling.json'} and scaling.png")


if __name__ == "__main__":
    main()
