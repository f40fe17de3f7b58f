"""Training throughput: each plugin's own training (its train stage, as `mlx run P train` runs it)
against a plain reference loop written from the library's own tutorial, on the same model, data,
batch size, optimizer and precision (issue 20, goal 7: mlx >= 0.95x).

    .venv/bin/python benchmarks/training.py                      # every plugin in CASES, 3 repeats
    .venv/bin/python benchmarks/training.py --quick              # 2 repeats (about half the time)
    .venv/bin/python benchmarks/training.py --plugins segmentation recsys --repeats 5

For each plugin, in one process on 2 threads:

* **mlx**: ``runner.run(P, "train")`` in process (``mlx_core.testing.run_in_process``: the data,
  model and train stages of the plugin's default config, with fewer images/examples and 2 epochs so
  the second one is steady state), and the samples/s the run recorded in run.json (see ``mlx_rate``):
  the last epoch's ``samples_per_s`` of the engine (mlx_torch: training time only, evaluation and
  checkpoint excluded) or, for plugins not on the engine yet, the rate they record themselves.
* **reference**: the model and batches built by the plugin's own data and model stages (called in
  process on the same config), trained by the tutorial's loop, timed over the same window as the
  mlx figure (``Timing.rate``).

Cases are interleaved (mlx, reference, reference, mlx, ...) over the repeats; median and min.
When multimodal and quant's LoRA move onto the engine, ``mlx_rate`` reads their ``samples_per_s``
rows like segmentation's: the script needs no change.

Writes benchmarks/results/training.json and training.png and prints the table.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from goals import goal

RESULTS = Path(__file__).resolve().parent / "results"
THREADS = 2
TARGET = ">= 0.95"
console = Console(stderr=True)


# --- what both sides produce --------------------------------------------------------------------
@dataclass
class Timing:
    """The reference loop's clock: per epoch (samples, seconds, seconds after its first step);
    ``total_s`` from the start of the stage-equivalent work (optimizer/adapters built) to the end."""

    epochs: list[tuple[int, float, float]] = field(default_factory=list)
    total_s: float = 0.0

    def rate(self, window: str) -> float:
        """samples/s over ``window``, the one the mlx figure covers (``mlx_rate``)."""
        if window == "stage":
            return sum(n for n, _, _ in self.epochs) / self.total_s
        if window == "all_epochs":
            return sum(n for n, _, _ in self.epochs) / sum(s for _, s, _ in self.epochs)
        n, s, steady = self.epochs[-1]
        if window == "last_epoch_after_first_step":
            batch = n // max(1, self.steps_last)
            return (n - batch) / steady
        return n / s  # "last_epoch" (and "last_epoch_with_eval": the reference does not evaluate)

    steps_last: int = 1


class EpochClock:
    """Time one epoch of a loop: ``tick()`` after every step."""

    def __init__(self, timing: Timing) -> None:
        self.timing, self.samples, self.steps = timing, 0, 0
        self.t0 = self.t1 = time.perf_counter()

    def tick(self, batch: int) -> None:
        self.samples += batch
        self.steps += 1
        if self.steps == 1:
            self.t1 = time.perf_counter()

    def close(self) -> None:
        end = time.perf_counter()
        self.timing.epochs.append((self.samples, end - self.t0, end - self.t1))
        self.timing.steps_last = self.steps


@dataclass
class Prepared:
    """A plugin's config and the outputs of its own data and model stages (in process)."""

    plugin: str
    cfg: Any
    ctx: Any
    data: Any
    registry: Any
    _model: Any = None

    def model(self) -> Any:
        """A fresh copy of the model stage's output (the untrained model both sides start from)."""
        return copy.deepcopy(self._model)

    def rebuild(self) -> Any:
        """The model stage again (models that do not deep-copy: bitsandbytes layers)."""
        self.ctx.stage = "model"
        return self.registry.call_stage("model", ctx=self.ctx, data=self.data, model=None)


def prepare(registry: Any, plugin: str, sets: list[str], run_dir: Path) -> Prepared:
    from mlx_core import config as cfgmod
    from mlx_core.testing import stage_context

    info = registry.get(plugin).info
    cfg, options = cfgmod.resolve(info.config, overrides=sets, options=registry.options_classes())
    ctx = stage_context(run_dir, plugin=plugin, config=cfg, stage="data", option_values=options, registry=registry)
    data = registry.call_stage("data", ctx=ctx, data=None, model=None)
    ctx.stage = "model"
    model = registry.call_stage("model", ctx=ctx, data=data, model=None)
    return Prepared(plugin, cfg, ctx, data, registry, model)


# --- the mlx side: what the run recorded ------------------------------------------------------------
def mlx_rate(manifest: dict[str, Any], prep: Prepared) -> tuple[float, str]:
    """(samples/s, window) from a finished run's run.json. The engine's rows first: every plugin on
    mlx_torch (and those moved onto it later) logs ``samples_per_s`` per epoch, training time only."""
    train = manifest["stages"]["train"]
    history, metrics = train.get("history", []), train.get("metrics", {})
    rows = [r for r in history if r.get("samples_per_s")]
    if rows:
        return float(rows[-1]["samples_per_s"]), "last_epoch"
    rows = [r for r in history if r.get("examples_per_s")]  # recsys: steps after the first
    if rows:
        return float(rows[-1]["examples_per_s"]), "last_epoch_after_first_step"
    if metrics.get("train_examples_per_s"):  # translation: examples / summed epoch training time
        return float(metrics["train_examples_per_s"]), "all_epochs"
    rows = [r for r in history if "elapsed_s" in r]  # multimodal before the engine: epoch wall time
    if len(rows) >= 2:
        return len(prep.data.train) / (rows[-1]["elapsed_s"] - rows[-2]["elapsed_s"]), "last_epoch_with_eval"
    lora = manifest.get("records", {}).get("lora")  # quant before the engine: the whole stage
    if lora:
        return lora["steps"] * prep.cfg.train.batch_size / train["duration_s"], "stage"
    raise SystemExit(f"{prep.plugin}: run.json records no training samples/s")


WINDOWS = {
    "last_epoch": "the last epoch's training time (evaluation and checkpoint excluded)",
    "last_epoch_after_first_step": "the last epoch after its first step",
    "all_epochs": "all epochs' training time (evaluation and checkpoints excluded)",
    "last_epoch_with_eval": "mlx: the last epoch's wall time with its evaluation and checkpoint (the plugin records "
    "no training-only rate yet); reference: training only",
    "stage": "the whole train stage (adapters built, steps, checkpoints): the plugin records no per-step rate yet",
}


# --- the references ----------------------------------------------------------------------------------
def ref_segmentation(prep: Prepared, epochs: int) -> Timing:
    """torchvision references/segmentation/train.py: ``train_one_epoch`` with its ``criterion``
    (cross-entropy ignoring 255, + 0.5 x aux), DataLoader with ``drop_last``, PolynomialLR stepped
    per iteration; the plugin's optimizer (AdamW), batch size and collate. MetricLogger's per-step
    ``loss.item()`` kept (the reference logs it every step)."""
    import torch.nn.functional as F
    from mlx_segmentation.train import collate

    cfg = prep.cfg.train
    torch.manual_seed(prep.ctx.seed)
    model = prep.model()
    loader = torch.utils.data.DataLoader(prep.data.train, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                         num_workers=0, collate_fn=collate)  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=len(loader) * epochs, power=0.9)

    def criterion(inputs: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        losses = {name: F.cross_entropy(x, target, ignore_index=255) for name, x in inputs.items()}
        return losses["out"] if len(losses) == 1 else losses["out"] + 0.5 * losses["aux"]

    timing = Timing()
    for epoch in range(epochs):
        prep.data.train.epoch = epoch + 1  # the plugin's epoch-seeded augmentation, as the engine sets it
        model.train()
        clock = EpochClock(timing)
        for image, target in loader:
            output = model(image)
            loss = criterion(output, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss.item()
            clock.tick(len(image))
        clock.close()
    return timing


def ref_custom_ops(prep: Prepared, epochs: int) -> Timing:
    """torchvision references/classification/train.py ``train_one_epoch``: CrossEntropyLoss, SGD
    (the plugin's: momentum 0.9, its weight decay), per-step ``loss.item()`` and top-1 accuracy for
    the MetricLogger; cosine schedule stepped per epoch; the plugin's dataset (its flip augmentation)."""
    from mlx_custom_ops.train import _images

    cfg = prep.cfg.train
    torch.manual_seed(prep.ctx.seed)
    model = prep.model()
    train_set = _images(prep.ctx, prep.data.train, augment=True)
    loader = torch.utils.data.DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=True)
    criterion = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    timing = Timing()
    for epoch in range(epochs):
        train_set.epoch = epoch + 1
        model.train()
        clock = EpochClock(timing)
        for image, target in loader:
            output = model(image)
            loss = criterion(output, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()
            (output.argmax(1) == target).float().mean().item()
            clock.tick(len(image))
        sched.step()
        clock.close()
    return timing


def ref_recsys(prep: Prepared, epochs: int) -> Timing:
    """TorchRec's DLRM example (examples/golden_training/train_dlrm.py, dlrm_main.py): the DLRM in
    DistributedModelParallel with the sparse optimizer fused in backward and a KeyedOptimizerWrapper
    for the dense part, then forward / BCE / backward / step per batch (what its
    ``TrainPipelineBase.progress`` does on the CPU). The model is built by the plugin's own code
    (same tables, plan and optimizers); the batches are the plugin's data stage's."""
    import torch.distributed as dist
    from mlx_recsys import data as D
    from mlx_recsys.train import _free_port, _sharded_model

    cfg, spec = prep.cfg, prep.data
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}  # fmt: skip
    os.environ.update(env)
    dist.init_process_group("gloo")
    try:
        dmp, dense_opt, _ = _sharded_model(cfg, 0, 1, 1)
        batch = cfg.data.batch_size
        steps = spec["n_train"] // batch
        if cfg.train.max_steps:
            steps = min(steps, cfg.train.max_steps)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        timing = Timing()
        for _ in range(epochs):
            dmp.train()
            clock = EpochClock(timing)
            for step, (dense, kjt, labels) in enumerate(D.train_batches(spec, batch)):
                if step >= steps:
                    break
                loss = bce(dmp(dense, kjt).squeeze(-1), labels)
                dense_opt.zero_grad()
                loss.backward()
                dense_opt.step()
                clock.tick(batch)
            clock.close()
        return timing
    finally:
        dist.destroy_process_group()
        for k in env:
            os.environ.pop(k, None)


def ref_translation(prep: Prepared, epochs: int) -> Timing:
    """The Hugging Face translation guide (docs/transformers/tasks/translation): Seq2SeqTrainer with
    DataCollatorForSeq2Seq and the guide's Seq2SeqTrainingArguments, here with the plugin's learning
    rate, batch size, weight decay, warm-up and epochs; training only (no evaluation, no saving)."""
    from mlx_translation.train import PRETRAINED_LR, SCRATCH_LR
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback

    cfg = prep.cfg.train
    tokenizer, tokenized = prep.data["tokenizer"], prep.data["tokenized"]
    model = prep.model()
    timing = Timing()

    class Clock(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kw):
            self.clock = EpochClock(timing)

        def on_step_end(self, args, state, control, **kw):
            self.clock.tick(cfg.batch_size)

        def on_epoch_end(self, args, state, control, **kw):
            self.clock.close()

    with tempfile.TemporaryDirectory() as out:
        args = Seq2SeqTrainingArguments(
            output_dir=out, eval_strategy="no", save_strategy="no", logging_strategy="epoch",
            learning_rate=cfg.learning_rate or (PRETRAINED_LR if prep.cfg.model.path else SCRATCH_LR),
            per_device_train_batch_size=cfg.batch_size, weight_decay=cfg.weight_decay, num_train_epochs=epochs,
            warmup_steps=cfg.warmup_ratio, lr_scheduler_type="linear", predict_with_generate=True, use_cpu=True,
            report_to="none", seed=prep.ctx.seed, disable_tqdm=True, dataloader_num_workers=0,
        )  # fmt: skip
        trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=tokenized["train"], processing_class=tokenizer,
                                 data_collator=DataCollatorForSeq2Seq(tokenizer, model=model), callbacks=[Clock()])  # fmt: skip
        trainer.train()
    return timing


def ref_multimodal(prep: Prepared, epochs: int) -> Timing:
    """A plain AdamW loop (PyTorch's "optimizing model parameters" tutorial) over the plugin's
    tensors: shuffled index batches, the model's own loss, gradient clipping at 1.0 as the plugin
    does, ``loss.item()`` per step."""
    from mlx_multimodal.data import to_float

    cfg = prep.cfg.train
    torch.manual_seed(prep.ctx.seed)
    model = prep.model()
    train = prep.data.train
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    timing = Timing()
    for _ in range(epochs):
        model.train()
        clock = EpochClock(timing)
        for idx in torch.randperm(len(train)).split(cfg.batch_size):
            loss = model.loss(model(to_float(train.images[idx]), train.input_ids[idx]), train.labels[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            loss.item()
            clock.tick(len(idx))
        clock.close()
    return timing


def ref_quant(prep: Prepared, epochs: int) -> Timing:
    """PEFT's LoRA quicktour: ``get_peft_model`` on the (bitsandbytes 8-bit) model, AdamW on the
    adapters, forward with labels / backward / step; the plugin's rank, alpha, targets, batch and
    windows. One epoch is every training window once, as on the engine."""
    from peft import LoraConfig, get_peft_model

    cfg = prep.cfg.train
    torch.manual_seed(prep.ctx.seed)
    bundle = prep.rebuild()
    timing = Timing()
    t0 = time.perf_counter()
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(cfg.target_modules),
                      lora_dropout=0.0, task_type="SEQ_2_SEQ_LM" if bundle.kind == "seq2seq" else "CAUSAL_LM")  # fmt: skip
    model = get_peft_model(bundle.model, lora)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    windows = bundle.train_windows
    model.train()
    for _ in range(epochs):  # the engine's epoch: every training window once, shuffled, in batches
        clock = EpochClock(timing)
        for idx in torch.randperm(len(windows)).split(cfg.batch_size):
            batch = windows[idx]
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            loss.item()
            clock.tick(len(idx))
        clock.close()
    timing.total_s = time.perf_counter() - t0
    return timing


# --- the cases ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One plugin: the size of its run (the rest is the plugin's default config), the reference
    loop, and which tutorial that loop follows."""

    sets: tuple[str, ...]
    reference: Callable[[Prepared, int], Timing]
    tutorial: str
    epochs_key: str | None = "train.epochs"  # None: the stage has no epochs (quant: train.steps)
    threads_key: str | None = "train.threads"
    warm: tuple[str, ...] = ()  # modules the train stage imports: imported up front, outside both clocks


CASES: dict[str, Case] = {
    "segmentation": Case(
        ("data.image_size=64", "train.batch_size=8", "data.sample_train=32", "data.sample_val=2"),
        ref_segmentation,
        "torchvision references/segmentation train_one_epoch",
    ),
    "custom_ops": Case(
        ("model.backend=torch", "data.sample_per_class=8", "data.sample_valid_per_class=1"),
        ref_custom_ops,
        "torchvision references/classification train_one_epoch",
    ),
    "recsys": Case(("data.examples=3000",), ref_recsys, "TorchRec DLRM example training loop"),
    "translation": Case(
        ("data.size=200", "train.eval_samples=4", "train.generation_max_length=8"),
        ref_translation,
        "Hugging Face translation guide (Seq2SeqTrainer)",
        threads_key="train.num_threads",
    ),
    "multimodal": Case(("data.n_train=320", "data.n_val=32"), ref_multimodal, "plain AdamW loop"),
    "quant": Case((), ref_quant, "PEFT LoRA quicktour loop", threads_key=None, warm=("peft",)),
}


def sets_of(plugin: str, epochs: int) -> list[str]:
    case = CASES[plugin]
    out = list(case.sets)
    if case.epochs_key:
        out.append(f"{case.epochs_key}={epochs}")
    if case.threads_key:
        out.append(f"{case.threads_key}={THREADS}")
    return out


# --- running -------------------------------------------------------------------------------------------
def measure(plugin: str, args: argparse.Namespace, registry: Any, tmp: Path) -> dict[str, Any]:
    from mlx_core.testing import run_in_process

    case, sets = CASES[plugin], sets_of(plugin, args.epochs)
    prep = prepare(registry, plugin, sets, tmp / f"{plugin}-prep")
    for module in case.warm:
        importlib.import_module(module)
    mlx: list[float] = []
    ref: list[float] = []
    window = None
    epochs = args.epochs if case.epochs_key else 1
    # no warm-up round: the data and model stages ran above (imports, first kernels) and each
    # figure is steady state (the last epoch) or covers the same warm-up on both sides
    for rep in range(args.repeats):
        order = ("mlx", "reference") if rep % 2 == 0 else ("reference", "mlx")
        for side in order:
            console.print(f"{plugin}: round {rep} {side}")
            if side == "mlx":
                manifest = run_in_process(registry, plugin, "train", tmp / f"{plugin}-runs", sets, device="cpu")
                rate, window = mlx_rate(manifest.data, prep)
                mlx.append(rate)
            else:
                timing = case.reference(prep, epochs)
                ref.append(timing.rate(window or "last_epoch"))
    ratio = statistics.median(mlx) / statistics.median(ref)
    return {
        "plugin": plugin, "sets": sets, "tutorial": case.tutorial, "window": window, "window_text": WINDOWS[window],
        "mlx_samples_per_s": {"median": statistics.median(mlx), "min": min(mlx), "all": mlx},
        "reference_samples_per_s": {"median": statistics.median(ref), "min": min(ref), "all": ref},
        "ratio": ratio, "ratio_of_mins": min(mlx) / min(ref),
    }  # fmt: skip


#: what a look at a slower (or noisy) case found; written into its goal's reason when the goal is missed
NOTES: dict[str, str] = {
    "quant": "quant's LoRA stage (not on the engine yet) also checkpoints the adapters and optimizer every "
    "train.checkpoint_every=2 steps and rewrites run.json per logged step; with 6 steps of a few seconds each the "
    "figure is a handful of samples and the repeats scatter widely (see the ratio of the slowest repeats)",
}


#: repeats of one side further apart than this (slowest / fastest) measure the machine's load, not
#: the code: such a case records its figures but no ratio (the goal is "not measured")
MAX_SPREAD = 2.0


def spread(side: dict[str, Any]) -> float:
    return max(side["all"]) / min(side["all"])


#: why a plugin has no row (the last full run's account)
MISSING: dict[str, str] = {
    "multimodal": "its first mlx round (2 epochs of 320 generated questions) did not finish in 13 minutes at load "
    "average ~22 on the 2 shared cores, and the session's time ran out",
}


def goal_of(row: dict[str, Any], load: float) -> dict[str, Any]:
    reason = ""
    worst = max(spread(row["mlx_samples_per_s"]), spread(row["reference_samples_per_s"]))
    if worst > MAX_SPREAD:
        m, f = row["mlx_samples_per_s"]["all"], row["reference_samples_per_s"]["all"]
        return goal(
            f"{row['plugin']}: training samples/s, mlx / {row['tutorial']} (same model, data, batch, optimizer)",
            None,
            TARGET,
            reason=f"not measured: repeats scatter {worst:.0f}x (mlx {', '.join(f'{x:.3g}' for x in m)}; reference "
            f"{', '.join(f'{x:.3g}' for x in f)} samples/s) at load average {load:.1f} on 2 cores; rerun "
            f"benchmarks/training.py --plugins {row['plugin']} on a quieter machine",
            load_avg=round(load, 2),
            window=row["window"],
            measured_ratio=round(row["ratio"], 4),
        )
    if row["ratio"] < 0.95:
        m, f = row["mlx_samples_per_s"], row["reference_samples_per_s"]
        reason = (
            f"mlx {m['median']:.3g} samples/s against {f['median']:.3g} (slowest repeats: {m['min']:.3g} against "
            f"{f['min']:.3g}, ratio {row['ratio_of_mins']:.2f})"
        )
        if row["window"] in ("last_epoch_with_eval", "stage"):
            reason += f"; {WINDOWS[row['window']]}"
        if row["plugin"] in NOTES:
            reason += f"; {NOTES[row['plugin']]}"
        reason += f"; load average {load:.1f} on 2 cores"
    return goal(
        f"{row['plugin']}: training samples/s, mlx / {row['tutorial']} (same model, data, batch, optimizer)",
        row["ratio"],
        TARGET,
        reason=row.get("reason") or reason,
        load_avg=round(load, 2),
        window=row["window"],
    )


def goals_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One goal per plugin in CASES: measured ones from their row, the others as not measured."""
    by = {r["plugin"]: r for r in rows}
    return [
        goal_of(by[p], by[p]["load_avg"])
        if p in by
        else goal(
            f"{p}: training samples/s, mlx / {CASES[p].tutorial} (same model, data, batch, optimizer)",
            None,
            TARGET,
            reason=f"not measured: {MISSING.get(p, 'no row yet')}; run benchmarks/training.py --plugins {p}",
        )
        for p in CASES
    ]


def show(rows: list[dict[str, Any]], goals: list[dict[str, Any]]) -> None:
    table = Table(title=f"training samples/s, mlx vs the tutorial loop ({THREADS} threads)")
    for col in ("plugin", "mlx median (min)", "reference median (min)", "ratio", "window", "load", "met"):
        table.add_column(col)
    by = {g["goal"].split(":")[0]: g for g in goals}
    for r in rows:
        m, f = r["mlx_samples_per_s"], r["reference_samples_per_s"]
        table.add_row(r["plugin"], f"{m['median']:.3g} ({m['min']:.3g})", f"{f['median']:.3g} ({f['min']:.3g})",
                      "-" if by[r["plugin"]]["ratio"] is None else f"{r['ratio']:.3f}", r["window"], f"{r['load_avg']:.1f}",
                      "yes" if by[r["plugin"]]["met"] else "no")  # fmt: skip
    Console().print(table)


def write(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Merge ``rows`` into results/training.json (a --plugins subset replaces only its own rows;
    each row keeps its own load average and date), then the goals and the PNG."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "training.json"
    names = {r["plugin"] for r in rows}
    kept = [r for r in json.loads(path.read_text())["rows"] if r["plugin"] not in names] if path.exists() else []
    rows = sorted(kept + rows, key=lambda r: list(CASES).index(r["plugin"]))
    goals = goals_of(rows)
    show(rows, goals)
    out = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "threads": THREADS, "load_avg_now": os.getloadavg()[0],
                    "note": "2 cores shared with other jobs: cases interleaved, medians of repeats; each row has "
                            "its own load_avg and measured_at"},
        "args": vars(args), "windows": WINDOWS, "goals": goals, "rows": rows,
    }  # fmt: skip
    path.write_text(json.dumps(out, indent=1) + "\n")
    chart(rows, RESULTS / "training.png")
    console.print(f"wrote {path} and training.png")


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(rows)), 3.8))
    names = [r["plugin"] for r in rows]
    ax.bar(names, [r["ratio"] for r in rows], color=["tab:green" if r["ratio"] >= 0.95 else "tab:red" for r in rows])
    ax.scatter(names, [r["ratio_of_mins"] for r in rows], color="k", zorder=3, label="ratio of the slowest repeats")
    ax.axhline(0.95, color="grey", ls="--", label="goal 0.95")
    ax.set_yscale("log")  # a case measured under heavy load can be far off either way
    ax.set_ylabel("mlx / reference samples/s (log)")
    ax.set_title("training throughput against the tutorial loop (2 threads)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plugins", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds per side, interleaved")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per run; the last one is the steady-state figure")
    ap.add_argument("--quick", action="store_true", help="2 repeats")
    ap.add_argument(
        "--no-write",
        action="store_true",
        help="print the table only (else a --plugins subset replaces only its own rows in the JSON)",
    )
    ap.add_argument("--rewrite", action="store_true", help="measure nothing: goals, table and PNG from the JSON's rows")
    args = ap.parse_args()
    if args.rewrite:
        write([], args)
        return
    if args.quick:
        args.repeats = 2
    torch.set_num_threads(THREADS)
    os.environ["OMP_NUM_THREADS"] = str(THREADS)
    from mlx_core.plugins import Registry

    registry = Registry()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for plugin in args.plugins:
            load, t0 = os.getloadavg()[0], time.perf_counter()
            row = measure(plugin, args, registry, Path(tmp))
            row.update(wall_s=round(time.perf_counter() - t0, 1), repeats=args.repeats, epochs=args.epochs,
                       load_avg=round(max(load, os.getloadavg()[0]), 2),
                       measured_at=time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()))  # fmt: skip
            rows.append(row)
    if args.no_write:
        show(rows, goals_of(rows))
        return
    write(rows, args)


if __name__ == "__main__":
    main()
