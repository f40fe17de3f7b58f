"""``fit``: a plugin's model trained on Ignite's ``Engine`` -- the loop, distribution, evaluation,
checkpoints, resume, early stopping and logging that every plain-torch plugin shares. The plugin
gives its loss, its evaluation output and its metrics; see docs/engine.md."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ignite
import ignite.distributed as idist
import torch
from ignite.engine import Engine, EventEnum, Events
from ignite.handlers import Checkpoint, EarlyStopping
from ignite.metrics import Metric
from ignite.utils import convert_tensor
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

from mlx_core import ConfigError, DataError, RunContext
from mlx_core.faults import hold_point, kill_point

from . import checkpoints as ck
from . import schedules
from .config import EngineTrainConfig
from .dist import gather, is_main, process_group, sync_buffers, timeout_s, weights_sha256
from .steps import StepState, autocast, check_precision, make_train_step

# Ignite logs "Engine run is terminating due to exception" and its auto_* helpers print their
# kwargs at INFO; the stage's own error line is the one the user should see.
logging.getLogger("ignite").addHandler(logging.NullHandler())


class TrainEvents(EventEnum):
    """Fired by the trainer after each epoch's row is logged (``engine.state.row``): where other
    code hooks in (``handlers=[lambda trainer, evaluator: trainer.add_event_handler(...)]``)."""

    EPOCH_LOGGED = "epoch_logged"


@dataclass
class FitResult:
    model: nn.Module  # unwrapped from DDP, in eval mode
    history: list[dict[str, Any]]  # one row per epoch, epoch 0 = before training
    last: dict[str, Any]  # summarize() of the last evaluation (may hold non-floats, e.g. per-class lists)
    checkpoint: Path | None  # the newest checkpoint
    resumed_from: int | None  # the epoch of the checkpoint this invocation resumed from
    stopped_early: int | None  # the epoch after which early stopping ended training
    world_size: int
    backend: str | None


def default_prepare(batch: Any, device: str) -> Any:
    return convert_tensor(batch, device=torch.device(device), non_blocking=True)


def fit(
    ctx: RunContext,
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    *,
    cfg: EngineTrainConfig,
    epochs: int,
    batch_size: int,
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    eval_fn: Callable[[nn.Module, Any], Any],
    metrics: Callable[[torch.device], Mapping[str, Metric]],
    summarize: Callable[[Mapping[str, Any]], dict[str, Any]],
    collate_fn: Callable | None = None,
    prepare: Callable[[Any, str], Any] = default_prepare,
    on_epoch_start: Callable[[int], None] | None = None,
    initial_name: str = "untrained",
    handlers: Iterable[Callable[[Engine, Engine], None]] = (),
    lr_name: str = "train.lr",
    trainable_only: bool = False,
) -> FitResult:
    """Train ``model`` for ``epochs`` (global ``batch_size`` split over the ranks) and return it.

    optimizer: builds the optimizer from the trainable parameters.
    loss_fn(model, batch): the training loss of a prepared batch.
    eval_fn(model, batch): what ``metrics`` consume for a prepared validation batch, e.g. (logits, y).
    metrics(device): fresh Ignite metrics by name, on ``device`` (Ignite reduces them over ranks).
    summarize(metric values): the evaluation's figures by name (``loss``, ``miou``, ...); the float
    ones become ``val_<name>`` in each epoch's row.
    trainable_only: checkpoints hold only the parameters that train (``requires_grad``), not the
    whole state_dict: for adapters on a frozen base that the model stage rebuilds (quant's LoRA on
    a bitsandbytes model, whose int8/4-bit weights need not be saved or loaded each epoch).
    """
    check_precision(cfg.precision, ctx.device)
    if cfg.early_stopping.metric is not None and cfg.early_stopping.metric in {"epoch", "seconds"}:
        raise ConfigError(f"train.early_stopping.metric={cfg.early_stopping.metric!r} is not a metric")
    with process_group(ctx.device, timeout_s(ctx)) as backend, contextlib.ExitStack() as stack:
        run = _Run(ctx, cfg, epochs, backend, stack)
        return run.fit(model, train_set, val_set, batch_size, optimizer, loss_fn, eval_fn, metrics, summarize,
                       collate_fn, prepare, on_epoch_start, initial_name, handlers, lr_name, trainable_only)  # fmt: skip


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence INFO logs (ignite's auto_* helpers set up their own stderr handlers)."""
    before = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(before)


def place(model: nn.Module, device: str) -> nn.Module:
    """Device placement and DDP through ``idist.auto_model`` when the run's device is ignite's;
    a CPU run on a machine with a GPU keeps the CPU (and gets a plain DDP)."""
    with quiet():
        if idist.device().type == device:
            return idist.auto_model(model)
        model = model.to(device)
        if idist.get_world_size() > 1:
            model = nn.parallel.DistributedDataParallel(model)
        return model


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel) else model


class _Run:
    """One invocation of ``fit``: the trainer, the evaluator and their handlers."""

    def __init__(self, ctx: RunContext, cfg: EngineTrainConfig, epochs: int, backend: str | None,
                 stack: contextlib.ExitStack) -> None:  # fmt: skip
        self.ctx, self.cfg, self.epochs, self.backend, self.stack = ctx, cfg, epochs, backend, stack
        self.main = is_main(ctx)
        self.world = idist.get_world_size()
        self.history, self.step_count, self.rng = ck.History(), ck.Step(), ck.RngStates()
        self.state = StepState()
        self.last: dict[str, Any] = {}
        self.evaluated = False
        self.stopped_early: int | None = None
        self.stopper: EarlyStopping | None = None
        self.local_rates: list[float] = []  # this rank's samples/s of each epoch

    # --- building ---------------------------------------------------------------------------
    def fit(self, model, train_set, val_set, batch_size, optimizer, loss_fn, eval_fn, metrics, summarize,
            collate_fn, prepare, on_epoch_start, initial_name, handlers, lr_name, trainable_only) -> FitResult:  # fmt: skip
        ctx, cfg = self.ctx, self.cfg
        rank = idist.get_rank()
        sampler = DistributedSampler(train_set, num_replicas=self.world, rank=rank, shuffle=True, seed=ctx.seed,
                                     drop_last=True)  # fmt: skip
        with quiet():
            train_loader = idist.auto_dataloader(train_set, batch_size=batch_size, sampler=sampler, drop_last=True,
                                                 num_workers=0, collate_fn=collate_fn)  # fmt: skip
            val_loader = idist.auto_dataloader(val_set, batch_size=batch_size, shuffle=False, num_workers=0,
                                               collate_fn=collate_fn)  # fmt: skip
        if len(train_loader) < 1:
            raise DataError(f"the training split gives no full batch of {batch_size} over {self.world} process(es)")
        model = place(model, ctx.device)
        net = unwrap(model)
        opt = idist.auto_optim(optimizer(p for p in model.parameters() if p.requires_grad))
        total = max(1, epochs_steps(self.epochs, len(train_loader), cfg.grad_accum_steps))
        sched = schedules.build(cfg, opt, total)
        step = make_train_step(model, opt, sched, loss_fn, prepare, cfg, ctx.device, self.step_count, self.state,
                               batch_size_of=_batch_len, lr_name=lr_name)  # fmt: skip
        trainer = Engine(step)
        trainer.register_events(*TrainEvents)
        evaluator = Engine(self._eval_step(net, eval_fn, prepare))
        # NCCL reduces CUDA tensors only; gloo and a single process keep the sums on the CPU
        metric_device = torch.device(ctx.device if self.backend == "nccl" else "cpu")
        for name, metric in metrics(metric_device).items():
            metric.attach(evaluator, name)
        self.evaluator, self.val_loader, self.summarize, self.net = evaluator, val_loader, summarize, net

        to_save: dict[str, Any] = {"model": ck.Trainable(net) if trainable_only else model, "optimizer": opt, "scheduler": sched, "trainer": trainer,
                                   "history": self.history, "step": self.step_count, "rng": self.rng}  # fmt: skip
        if step.scaler is not None:
            to_save["scaler"] = step.scaler
        stopper = self.stopper = self._early_stopping(trainer)
        if stopper is not None:
            to_save["early_stopping"] = stopper
        saver = ck.RunDirSaver(ctx, is_main=self.main)
        checkpointer = Checkpoint(to_save, saver, n_saved=cfg.keep_checkpoints, filename_pattern=ck.PATTERN,
                                  global_step_transform=lambda engine, _: engine.state.epoch, include_self=True)  # fmt: skip
        self._wire(trainer, sampler, on_epoch_start, checkpointer, len(train_loader))
        if stopper is not None:  # after the epoch's row is logged and checkpointed
            trainer.add_event_handler(Events.EPOCH_COMPLETED, stopper)
        for attach in handlers:
            attach(trainer, evaluator)

        resumed_from = self._resume(to_save, checkpointer, len(train_loader))
        if resumed_from is None:
            self._initial(initial_name)
        self._check_stop_metric()
        done = trainer.state.epoch >= self.epochs or (stopper is not None and stopper.counter >= stopper.patience)
        if not done:
            try:
                trainer.run(train_loader, max_epochs=self.epochs)
            except ValueError as exc:
                if "epoch_length" not in str(exc):
                    raise
                raise DataError(f"the checkpoint's epoch length does not fit this run's data: {exc}") from None
        if not self.evaluated:  # resumed after the last epoch: nothing was evaluated here yet
            self.last = self.evaluate("evaluate")
        self._record()
        latest = ck.found(ctx.path("checkpoints"))
        net.eval()
        return FitResult(net, list(self.history.rows), self.last, latest[-1][1] if latest else None, resumed_from,
                         self.stopped_early, self.world, self.backend)  # fmt: skip

    def _eval_step(self, net: nn.Module, eval_fn, prepare) -> Callable[[Engine, Any], Any]:
        cfg, device = self.cfg, self.ctx.device

        def step(engine: Engine, batch: Any) -> Any:
            net.eval()
            with torch.no_grad(), autocast(cfg.precision, device):
                out = eval_fn(net, prepare(batch, device))
            return tuple(o.float() if torch.is_floating_point(o) else o for o in out)

        return step

    def _early_stopping(self, trainer: Engine) -> EarlyStopping | None:
        es = self.cfg.early_stopping
        if es.metric is None:
            return None
        metric = es.metric

        def score(_: Engine) -> float:
            return float(self.history.rows[-1][metric])

        stopper = EarlyStopping(es.patience, score, trainer, threshold=es.min_delta, mode=es.mode)
        stopper.logger.setLevel(logging.WARNING)  # its INFO line has its own stderr handler; ours is below
        return stopper

    def _check_stop_metric(self) -> None:
        metric = self.cfg.early_stopping.metric
        if metric is None:
            return
        row = self.history.rows[-1]
        names = [k for k, v in row.items() if isinstance(v, float) and k not in ("seconds",)]
        if metric not in row or metric not in names:
            raise ConfigError(
                f"train.early_stopping.metric={metric!r} is not logged each epoch; expected one of {', '.join(names)}"
            )

    def _wire(self, trainer: Engine, sampler: DistributedSampler, on_epoch_start, checkpointer, length: int) -> None:
        ctx = self.ctx
        clock: dict[str, float] = {}

        @trainer.on(Events.EPOCH_STARTED)
        def _start(engine: Engine) -> None:
            epoch = engine.state.epoch
            sampler.set_epoch(epoch)  # the shuffle of epoch E is the same after a resume
            kill_point(f"{ctx.plugin}:epoch_start:{epoch}")  # test-only, on every rank (MLX_TEST_FAULT_RANK)
            if on_epoch_start is not None:
                on_epoch_start(epoch)
            self.state.reset()
            clock["t0"] = time.perf_counter()
            self.advance = self.stack.enter_context(ctx.progress(f"epoch {epoch}/{self.epochs}", total=length))

        @trainer.on(Events.ITERATION_COMPLETED)
        def _advance(_: Engine) -> None:
            self.advance(1)

        @trainer.on(Events.EPOCH_COMPLETED)
        def _close(engine: Engine) -> None:
            epoch = engine.state.epoch
            self.stack.close()  # the epoch's progress bar
            # test-only (mlx_core.faults), on every rank: a worker that dies or raises while the
            # others wait for it in the collective below
            kill_point(f"{ctx.plugin}:epoch_end:{epoch}")
            hold_point(f"{ctx.plugin}:epoch_end:{epoch}")
            trained = time.perf_counter() - clock["t0"]
            sums = idist.all_reduce(torch.tensor([self.state.loss_sum, float(self.state.samples)], dtype=torch.float64))
            self.local_rates.append(self.state.samples / max(trained, 1e-9))
            sync_buffers(self.net)
            ev = self.evaluate(f"evaluate epoch {epoch}")
            row = {"epoch": epoch, "train_loss": float(sums[0] / max(float(sums[1]), 1.0)), **_val(ev),
                   "lr": self.state.lr, "samples_per_s": float(sums[1]) / max(trained, 1e-9),
                   "seconds": time.perf_counter() - clock["t0"]}  # fmt: skip
            self.history.rows.append(row)
            checkpointer(engine)
            if self.main:
                kill_point(f"{ctx.plugin}:before_log:{epoch}")  # test-only (mlx_core.faults)
            # logged once its checkpoint exists, so no logged epoch lacks one; an epoch checkpointed
            # but killed before this line is logged by the resume, from the checkpoint's history
            self._log(engine, row)
            engine.state.row = row
            engine.fire_event(TrainEvents.EPOCH_LOGGED)

        @trainer.on(Events.TERMINATE)
        def _stopped(engine: Engine) -> None:
            # early stopping's own terminate (its counter ran out), not another handler's (a time budget)
            if self.stopper is not None and self.stopper.counter >= self.stopper.patience:
                self.stopped_early = engine.state.epoch
                if self.main:
                    ctx.log(f"early stopping after epoch {engine.state.epoch}: "
                            f"{self.cfg.early_stopping.metric} did not improve for {self.cfg.early_stopping.patience} epochs")  # fmt: skip

    # --- evaluation and logging ----------------------------------------------------------------
    def evaluate(self, desc: str) -> dict[str, Any]:
        with self.ctx.progress(desc, total=len(self.val_loader)) as advance:
            handle = self.evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda _: advance(1))
            try:
                self.evaluator.run(self.val_loader)
            finally:
                handle.remove()
        self.evaluated = True
        self.last = self.summarize(self.evaluator.state.metrics)
        return self.last

    def _initial(self, name: str) -> None:
        t0 = time.perf_counter()
        ev = self.evaluate(f"evaluate {name}")
        self.history.rows = [
            {"epoch": 0, "train_loss": None, **_val(ev), "lr": 0.0, "seconds": time.perf_counter() - t0}
        ]
        if self.main:
            self.ctx.log_metrics({f"{name}_{k}": v for k, v in _val(ev).items()}, step=0)

    def _log(self, engine: Engine, row: dict[str, Any]) -> None:
        """Log the row on the main rank (trackers, sweeps: a sweep's pruner may raise here); every
        rank learns whether the main one failed, so none waits forever in the next collective."""
        failure: BaseException | None = None
        if self.main:
            try:
                self.ctx.log_metrics(_logged(row), step=row["epoch"])
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after telling the other ranks
                failure = exc
        if self.world > 1 and int(idist.all_reduce(torch.tensor(int(failure is not None)))) > 0:
            engine.terminate()
        if failure is not None:
            raise failure

    def _resume(self, to_save: dict[str, Any], checkpointer: Checkpoint, length: int) -> int | None:
        ctx = self.ctx
        found = ck.found(ctx.path("checkpoints")) if ctx.resumed else []
        if not found:
            return None
        epoch, path = found[-1]
        state = ck.load(path)
        try:
            Checkpoint.load_objects({**to_save, "checkpointer": checkpointer}, state)
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"checkpoint {path} does not fit this run's model/optimizer: {str(exc).splitlines()[0][:200]}"
            ) from None
        trainer = to_save["trainer"]
        if trainer.state.epoch_length != length:
            # another --nproc (or batch size) than the checkpointed run: its batches an epoch change;
            # checkpoints are at epoch ends, so the next epoch starts at this run's own epoch length
            if self.main:
                ctx.log(f"the checkpoint's epochs had {trainer.state.epoch_length} batches a process; this run's have "
                        f"{length}")  # fmt: skip
            trainer.state.epoch_length = length
            trainer.state.iteration = trainer.state.epoch * length
        if self.main:
            ctx.log(f"resuming from {path.relative_to(ctx.run_dir)} (epoch {epoch} of {self.epochs})")
            ctx.record("resumed_from_epoch", epoch)
            logged = {r.get("step") for r in ctx.manifest.stage(ctx.stage).get("history", [])}
            for row in self.history.rows:  # checkpointed, but the kill came before its log line
                if row["epoch"] >= 1 and row["epoch"] not in logged:
                    ctx.log_metrics(_logged(row), step=row["epoch"])
        return epoch

    def _record(self) -> None:
        local = sorted(self.local_rates)
        ranks = gather({"rank": idist.get_rank(), "samples_per_s": local[len(local) // 2] if local else 0.0,
                        "weights_sha256": weights_sha256(self.net)})  # fmt: skip
        if not self.main:
            return
        if self.world > 1 and hasattr(self.ctx, "record_ranks"):
            self.ctx.record_ranks(ranks)
        rates = sorted(r["samples_per_s"] for r in self.history.rows if r.get("samples_per_s"))
        self.ctx.record("engine", {
            "library": f"pytorch-ignite {ignite.__version__}", "precision": self.cfg.precision,
            "world_size": self.world, "backend": self.backend, "grad_accum_steps": self.cfg.grad_accum_steps,
            "optimizer_steps": self.step_count.value, "stopped_early_after_epoch": self.stopped_early,
            "samples_per_s": rates[len(rates) // 2] if rates else None,
        })  # fmt: skip


def epochs_steps(epochs: int, batches: int, accum: int) -> int:
    """Optimizer steps in ``epochs`` epochs of ``batches`` batches (a step every ``accum`` and at
    each epoch's end)."""
    return epochs * -(-batches // accum)


def _batch_len(batch: Any) -> int:
    first = batch[0] if isinstance(batch, list | tuple) else batch
    return len(first)


def _val(ev: Mapping[str, Any]) -> dict[str, float]:
    return {f"val_{k}": float(v) for k, v in ev.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _logged(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("epoch", "seconds") and v is not None}
