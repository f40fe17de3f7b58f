"""``mlx sweep PLUGIN STAGE``: hyper-parameter search on Optuna, every trial an ordinary ``mlx run``.

The sweep process owns the Optuna study (sqlite ``<runs-dir>/sweeps.db`` by default). Each trial is
a subprocess ``python -m mlx_core run PLUGIN STAGE --set KEY=VALUE ...`` whose environment names
the study and the trial (``MLX_SWEEP_*``); in that process the runner attaches a
:class:`TrialObserver`, which records the sweep in ``run.json`` (``records.sweep``), reports every
stepped value of the metric to the trial and asks the pruner, raising :class:`~mlx_core.errors.Pruned`
to stop the run. Trials share nothing but the storage and ``run.json``: no pickled trainer, no
shared interpreter, any plugin.

Resume: the same command again loads the study (``load_if_exists``) and runs only the trials still
missing: COMPLETE, PRUNED and FAIL trials count toward ``--trials``. A trial left RUNNING by a
sweep that was killed (its sweep process on this host is gone) is marked FAIL with
``mlx_interrupted`` and its parameters are enqueued once again; interrupted trials do not count.

Optuna (and matplotlib for the plots) are the ``mlx-core[sweep]`` extra, imported only here and
only when a sweep or a trial runs.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import sweep_space
from .errors import MlxError, Pruned, UsageError

ENV_STORAGE = "MLX_SWEEP_STORAGE"
ENV_STUDY = "MLX_SWEEP_STUDY"
ENV_TRIAL = "MLX_SWEEP_TRIAL"
ENV_METRIC = "MLX_SWEEP_METRIC"
ENV_DIRECTION = "MLX_SWEEP_DIRECTION"
ENV_PRUNER = "MLX_SWEEP_PRUNER"  # JSON: {"kind": "median", "n_startup_trials": 2, "n_warmup_steps": 0}
ENV_PARENT_RUN = "MLX_TRACK_PARENT_RUN_ID"  # honoured by the MLflow tracker: the trial is a nested run

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "none")
INSTALL = "pip install 'mlx-core[sweep]'"


class NoTrialCompleted(MlxError):
    """Every trial of the study failed or was pruned: there is no best trial."""

    exit_code = 1


class _TrialFailed(Exception):
    """A trial's run failed; Optuna records it FAIL (``catch``) and the sweep goes on."""


def require_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise UsageError(f"mlx sweep needs Optuna: {INSTALL}") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the sweep prints its own line per trial
    return optuna


def open_storage(optuna: Any, url: str, created: bool = False) -> Any:
    """An RDB storage; sqlite waits for its lock instead of failing when trials report at once.
    ``created``: the sweep made the tables already (a trial skips alembic's checks: faster start)."""
    kwargs: dict[str, Any] = {"skip_compatibility_check": True, "skip_table_creation": True} if created else {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    try:
        return optuna.storages.RDBStorage(url, **kwargs)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's many errors: one line naming the URL
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise UsageError(f"--storage {url}: cannot open it ({first})") from None


def shown_storage(url: str) -> str:
    """The storage URL without a password (for run.json and sweep.json)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a SQLAlchemy URL: show it as given
        return url


def make_pruner(optuna: Any, spec: dict[str, Any]) -> Any:
    if spec.get("kind") == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=int(spec.get("n_startup_trials", 2)), n_warmup_steps=int(spec.get("n_warmup_steps", 0))
        )
    return optuna.pruners.NopPruner()


# --- the trial side: an observer in the trial's own `mlx run` process -------------------------
class TrialObserver:
    """Reports the sweep metric's stepped values to the Optuna trial and stops a pruned run."""

    def __init__(self, env: dict[str, str] | os._Environ[str]) -> None:
        self.storage_url = env[ENV_STORAGE]
        self.study_name = env[ENV_STUDY]
        self.number = int(env[ENV_TRIAL])
        self.metric = env.get(ENV_METRIC, "")
        self.direction = env.get(ENV_DIRECTION, "minimize")
        self.pruner = json.loads(env.get(ENV_PRUNER) or '{"kind": "none"}')
        self.trial: Any = None

    def start(self, manifest: Any) -> None:
        optuna = require_optuna()
        storage = open_storage(optuna, self.storage_url, created=True)
        study_id = storage.get_study_id_from_name(self.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, self.number)
        # RandomSampler: the trial process samples nothing (its values came in as --set), so the
        # cheapest sampler; the pruner must be the sweep's own, it is not kept in the storage
        study = optuna.load_study(
            study_name=self.study_name,
            storage=storage,
            sampler=optuna.samplers.RandomSampler(),
            pruner=make_pruner(optuna, self.pruner),
        )
        self.trial = optuna.trial.Trial(study, trial_id)
        manifest.record(
            "sweep",
            {
                "study": self.study_name,
                "storage": shown_storage(self.storage_url),
                "trial": self.number,
                "metric": self.metric,
                "direction": self.direction,
                "params": self.trial.params,
            },
        )

    def metrics(self, stage: str, metrics: dict[str, Any], step: int | None) -> None:
        if self.trial is None or step is None or self.metric not in metrics:
            return
        try:
            value = float(metrics[self.metric])
        except (TypeError, ValueError):
            return
        if not math.isfinite(value):
            return
        self.trial.report(value, int(step))
        if self.trial.should_prune():
            raise Pruned(
                f"trial {self.number} of study {self.study_name!r} pruned at step {step}: "
                f"{self.metric}={value:.6g} is not promising"
            )

    def end(self, manifest: Any, status: str) -> None:
        pass  # the sweep process reads the outcome from run.json and tells Optuna


def trial_observer(env: dict[str, str] | os._Environ[str] | None = None) -> TrialObserver | None:
    """The observer of a sweep trial when this process is one (``MLX_SWEEP_STUDY`` set), else None."""
    env = os.environ if env is None else env
    if not env.get(ENV_STUDY) or not env.get(ENV_STORAGE) or not env.get(ENV_TRIAL):
        return None
    return TrialObserver(env)


# --- the sweep side ---------------------------------------------------------------------------
@dataclass
class SweepArgs:
    plugin: str
    stage: str
    metric: str | None
    direction: str | None
    trials: int = 10
    space: list[str] = field(default_factory=list)
    space_from_schema: list[str] = field(default_factory=list)
    jobs: int = 1
    storage: str | None = None
    study: str | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    prune_after: int = 2
    prune_warmup: int = 0
    timeout: float | None = None
    seed: int | None = None
    config: Path | None = None
    sets: list[str] = field(default_factory=list)
    device: str = "auto"
    runs_dir: Path = Path("runs")
    track: str | None = None


@dataclass
class _Plan:
    """Everything checked before the first trial."""

    args: SweepArgs
    dims: list[sweep_space.Dim]
    runs_dir: Path
    storage_url: str
    study_name: str
    sweep_dir: Path
    jobs: int
    pruner: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    parent_run: Any = None  # (client, run_id, uri) with --track mlflow


def _check_flags(args: SweepArgs) -> None:
    """The flags that need no plugin: one line each, before anything is loaded."""
    if not args.metric:
        raise UsageError("mlx sweep needs --metric KEY: a metric the run logs (see a run's run.json 'metrics')")
    if args.direction not in ("minimize", "maximize"):
        raise UsageError(f"--direction {args.direction!r}: expected minimize or maximize")
    if args.trials < 1:
        raise UsageError(f"--trials {args.trials}: expected at least 1")
    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: expected at least 1")
    if args.sampler not in SAMPLERS:
        raise UsageError(f"--sampler {args.sampler!r}: expected one of {', '.join(SAMPLERS)}")
    if args.pruner not in PRUNERS:
        raise UsageError(f"--pruner {args.pruner!r}: expected one of {', '.join(PRUNERS)}")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout}: expected a positive number of seconds")


def _check(args: SweepArgs) -> _Plan:
    from . import config as cfgmod
    from .plugins import Registry
    from .runner import check_stage

    _check_flags(args)
    registry = Registry()
    rec = registry.get(args.plugin)
    check_stage(args.stage)
    info = rec.info
    assert info is not None
    if info.config is None:
        raise UsageError(f"plugin {args.plugin!r} takes no config: there is nothing to sweep")
    cfg, _ = cfgmod.resolve(
        info.config, file=args.config, overrides=args.sets, options=registry.options_classes()
    )  # the sweep's own --config / --set are checked once, before any trial
    base = cfg.model_dump(mode="json")
    keys = [k.strip() for item in args.space_from_schema for k in item.split(",") if k.strip()]
    dims = sweep_space.build(info.config, base, [s for s in args.space], keys)
    if args.sampler == "grid":
        ranged = [d for d in dims if d.kind != "choice"]
        if ranged:
            raise UsageError(
                f"--sampler grid needs a finite space (choice(...) only); {ranged[0].text} is a range: "
                "use choice(...) or --sampler tpe"
            )
    runs_dir = Path(args.runs_dir).resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    storage_url = args.storage or f"sqlite:///{runs_dir / 'sweeps.db'}"
    study_name = args.study or f"{args.plugin}-{args.stage}-{args.metric}"
    if "/" in study_name or study_name.startswith("."):
        raise UsageError(f"--study {study_name!r}: a study name may not contain '/' or start with '.'")
    cpus = os.cpu_count() or 1
    jobs = min(args.jobs, cpus)
    notes = []
    if jobs < args.jobs:
        notes.append(f"--jobs {args.jobs} capped at {jobs}: this machine has {cpus} CPU cores")
    pruner = {"kind": args.pruner, "n_startup_trials": args.prune_after, "n_warmup_steps": args.prune_warmup}
    return _Plan(args, dims, runs_dir, storage_url, study_name, runs_dir / "sweeps" / study_name, jobs, pruner, notes)


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def _counted(t: Any) -> bool:
    from optuna.trial import TrialState

    if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return t.state == TrialState.FAIL and not t.user_attrs.get("mlx_interrupted")


def _recover(optuna: Any, study: Any, storage: Any, plan: _Plan) -> list[str]:
    """Mark trials a killed sweep on this host left RUNNING as FAIL (interrupted) and enqueue the
    parameters of every interrupted trial once more. Returns what it did, for the notes."""
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(plan.study_name)
    host = socket.gethostname()
    done: list[str] = []
    trials = study.get_trials(deepcopy=False)
    for t in trials:
        attrs = t.user_attrs
        if t.state == TrialState.RUNNING and attrs.get("mlx_host") == host and not _pid_alive(attrs.get("mlx_pid")):
            tid = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            storage.set_trial_user_attr(tid, "mlx_interrupted", True)
            storage.set_trial_user_attr(tid, "error", "interrupted: the sweep running it was stopped")
            storage.set_trial_state_values(tid, TrialState.FAIL)
            done.append(
                f"trial {t.number} was left running by a stopped sweep (pid {attrs.get('mlx_pid')}): marked FAIL"
            )
    retried = {t.user_attrs.get("mlx_retry_of") for t in study.get_trials(deepcopy=False)}
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if t.user_attrs.get("mlx_interrupted") and t.number not in retried and t.params:
            study.enqueue_trial(t.params, user_attrs={"mlx_retry_of": t.number})
            done.append(f"trial {t.number} was interrupted: its parameters run again")
    return done


def _sampler(optuna: Any, plan: _Plan, offset: int) -> Any:
    # a resumed sweep with --seed must not replay the first sweep's draws: offset by trials so far
    seed = None if plan.args.seed is None else plan.args.seed + offset
    if plan.args.sampler == "grid":
        return optuna.samplers.GridSampler({d.key: list(d.choices) for d in plan.dims}, seed=seed)
    if plan.args.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _open_study(optuna: Any, plan: _Plan) -> tuple[Any, Any]:
    storage = open_storage(optuna, plan.storage_url)
    names = {s.study_name for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)}
    existing = 0
    if plan.study_name in names:
        existing = len(optuna.load_study(study_name=plan.study_name, storage=storage).trials)
    study = optuna.create_study(
        study_name=plan.study_name,
        storage=storage,
        sampler=_sampler(optuna, plan, existing),
        pruner=make_pruner(optuna, plan.pruner),
        direction=plan.args.direction,
        load_if_exists=True,
    )
    args = plan.args
    identity = {"plugin": args.plugin, "stage": args.stage, "metric": args.metric}
    attrs = study.user_attrs
    if not attrs.get("mlx"):
        study.set_user_attr("mlx", identity)
        study.set_user_attr("space", [d.text for d in plan.dims])
    elif attrs["mlx"] != identity:
        raise UsageError(
            f"study {plan.study_name!r} in {shown_storage(plan.storage_url)} is a sweep of {attrs['mlx']}, not "
            f"{identity}: give another --study"
        )
    direction = study.direction.name.lower()
    if direction != args.direction:
        raise UsageError(
            f"study {plan.study_name!r} {direction}s {args.metric}; --direction {args.direction} needs another --study"
        )
    _check_choices(study, plan)
    if attrs.get("space") and attrs["space"] != [d.text for d in plan.dims]:
        plan.notes.append(f"the space differs from the one study {plan.study_name!r} began with: {attrs['space']}")
    return study, storage


def _check_choices(study: Any, plan: _Plan) -> None:
    """Optuna keeps one categorical distribution per parameter in a study: a changed choice list
    would fail inside the sampler, so it is refused here, before any trial."""
    choices = {d.key: tuple(d.choices) for d in plan.dims if d.kind == "choice"}
    for t in study.get_trials(deepcopy=False):
        for key, dist in t.distributions.items():
            old = getattr(dist, "choices", None)
            if key in choices and old is not None and tuple(old) != choices[key]:
                was = sweep_space.Dim(key, "choice", choices=tuple(old)).text.split("=", 1)[1]
                raise UsageError(
                    f"study {plan.study_name!r} drew {key} from {was}; a different choice list needs another --study"
                )


def _last_error(stderr: str, returncode: int) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    if errors:
        return errors[-1][len("error: ") :]
    return f"exit code {returncode}: {lines[-1] if lines else 'no output'}"


def _run_dir(stderr: str) -> Path | None:
    for line in stderr.splitlines():
        if line.startswith("run /"):
            return Path(line[4:].strip())
    return None


class _Sweep:
    def __init__(self, optuna: Any, plan: _Plan, study: Any, out: Any, err: Any) -> None:
        self.optuna, self.plan, self.study, self.out, self.err = optuna, plan, study, out, err
        self.lock = threading.Lock()
        self.started = time.time()

    def command(self, params: dict[str, Any]) -> list[str]:
        a = self.plan.args
        cmd = [sys.executable, "-m", "mlx_core", "run", a.plugin, a.stage, "--runs-dir", str(self.plan.runs_dir),
               "--device", a.device]  # fmt: skip
        if a.config is not None:
            cmd += ["--config", str(Path(a.config).resolve())]
        for item in [*a.sets, *(sweep_space.override(k, v) for k, v in params.items())]:
            cmd += ["--set", item]  # the trial's values last: they win over the sweep's own --set
        if self.plan.parent_run is not None:
            cmd += ["--track", f"mlflow={self.plan.parent_run[2]}"]
        return cmd

    def objective(self, trial: Any) -> float:
        a = self.plan.args
        params = {d.key: d.suggest(trial) for d in self.plan.dims}
        trial.set_user_attr("mlx_host", socket.gethostname())
        trial.set_user_attr("mlx_pid", os.getpid())
        env = {**os.environ, ENV_STORAGE: self.plan.storage_url, ENV_STUDY: self.plan.study_name,
               ENV_TRIAL: str(trial.number), ENV_METRIC: a.metric or "", ENV_DIRECTION: a.direction or "",
               ENV_PRUNER: json.dumps(self.plan.pruner)}  # fmt: skip
        if self.plan.parent_run is not None:
            env[ENV_PARENT_RUN] = self.plan.parent_run[1]
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            self.command(params), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        try:
            stdout, stderr = proc.communicate()
        except BaseException:  # Ctrl-C / SIGTERM of the sweep: stop the trial's run as a user would
            trial.set_user_attr("mlx_interrupted", True)
            trial.set_user_attr("error", "interrupted: the sweep was stopped")
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
            raise
        seconds = round(time.perf_counter() - t0, 2)
        trial.set_user_attr("seconds", seconds)
        trial.set_user_attr("exit_code", proc.returncode)
        from .runs import atomic_write

        atomic_write(self.plan.sweep_dir / "trials" / f"trial-{trial.number:04d}.log", stderr + stdout)
        run_dir = _run_dir(stderr)
        manifest: dict[str, Any] = {}
        if run_dir is not None:
            trial.set_user_attr("run_dir", str(run_dir))
            with contextlib.suppress(OSError, ValueError):
                manifest = json.loads((run_dir / "run.json").read_text())
        status = manifest.get("status")
        if status == "pruned":
            reason = _last_error(stderr, proc.returncode)
            trial.set_user_attr("error", reason)
            raise self.optuna.TrialPruned(reason)
        if proc.returncode != 0 or status != "completed":
            reason = _last_error(stderr, proc.returncode)
            trial.set_user_attr("error", reason)
            raise _TrialFailed(reason)
        metrics = manifest.get("metrics", {})
        if a.metric not in metrics:
            raise UsageError(
                f"--metric {a.metric}: trial {trial.number}'s run completed without logging it; "
                f"it logged: {', '.join(sorted(metrics)) or 'nothing'} ({run_dir})"
            )
        try:
            value = float(metrics[a.metric])
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            reason = f"{a.metric} is {metrics[a.metric]!r}, not a finite number"
            trial.set_user_attr("error", reason)
            raise _TrialFailed(reason)
        return value

    def after_trial(self, study: Any, frozen: Any) -> None:
        with self.lock:
            row = _trial_row(frozen, self.plan.runs_dir)
            value = "" if row["value"] is None else f" {self.plan.args.metric}={row['value']:.6g}"
            why = f" ({row['error']})" if row["error"] else ""
            self.err.print(
                f"trial {frozen.number} {row['state']}{value} {row['params']} {row['seconds'] or 0:.1f}s{why}",
                highlight=False, markup=False, soft_wrap=True,
            )  # fmt: skip
            write_results(self.optuna, study, self.plan, plots=False)


def _trial_row(t: Any, runs_dir: Path) -> dict[str, Any]:
    run_dir = t.user_attrs.get("run_dir")
    if run_dir:
        with contextlib.suppress(ValueError):
            run_dir = str(Path(run_dir).relative_to(runs_dir))
    return {
        "number": t.number,
        "state": t.state.name,
        "value": t.value if t.state.name == "COMPLETE" else None,
        "params": t.params,
        "seconds": t.user_attrs.get("seconds"),
        "run_dir": run_dir,
        "error": t.user_attrs.get("error"),
        "retry_of": t.user_attrs.get("mlx_retry_of"),
        "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
    }


def _best(study: Any) -> Any:
    try:
        return study.best_trial
    except ValueError:  # no COMPLETE trial
        return None


def _best_row(best: Any) -> dict[str, Any] | None:
    if best is None:
        return None
    return {
        "number": best.number,
        "value": best.value,
        "params": best.params,
        "run_dir": best.user_attrs.get("run_dir"),
    }


def best_config_toml(plan: _Plan, best: Any) -> tuple[str, str | None]:
    """The best trial's full resolved config (and the options it changed) as TOML, checked by
    reading it back as ``mlx run --config`` would; returns (text, a note if it does not round-trip)."""
    import tomli_w

    from . import config as cfgmod
    from .plugins import Registry

    run = json.loads((Path(best.user_attrs["run_dir"]) / "run.json").read_text())
    registry = Registry()
    info = registry.get(plan.args.plugin).info
    assert info is not None and info.config is not None
    tree = _drop_none(run.get("config", {}))
    for name, cls in registry.options_classes().items():
        values = run.get("options", {}).get(name)
        if values and values != cls().model_dump(mode="json"):
            tree[name] = _drop_none(values)
    a = plan.args
    header = (
        f"# best trial {best.number} of study {plan.study_name!r}: {a.metric} = {best.value!r} ({a.direction})\n"
        f"# run: {best.user_attrs['run_dir']}\n"
        f"# reproduce: mlx run {a.plugin} {a.stage} --config best.toml\n"
    )
    text = header + tomli_w.dumps(tree)
    note = None
    import tomllib

    cfg, _ = cfgmod.resolve(info.config, base=tomllib.loads(text), options=registry.options_classes())
    if cfg.model_dump(mode="json") != run.get("config"):
        note = "best.toml does not hold the best run's config exactly (TOML has no null); compare with its run.json"
    return text, note


def _drop_none(tree: dict[str, Any]) -> dict[str, Any]:
    """TOML has no null: a ``None`` value is left out (the default, ``None`` where it is optional)."""
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in tree.items() if v is not None}


def write_results(optuna: Any, study: Any, plan: _Plan, plots: bool = True) -> dict[str, Any]:
    """sweep.json (always), and with ``plots``: history.png, importance.png and best.toml."""
    from .runs import atomic_path, atomic_write, atomic_write_json

    a = plan.args
    trials = study.get_trials(deepcopy=False)
    rows = [_trial_row(t, plan.runs_dir) for t in trials]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    best = _best(study)
    notes = list(plan.notes)
    files: dict[str, str] = {}
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    if plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as vis

        wanted = [("history", vis.plot_optimization_history, 1), ("importance", vis.plot_param_importances, 2)]
        for name, plot, needs in wanted:
            if len(complete) < needs:
                notes.append(f"{name}.png skipped: it needs {needs} completed trial(s), the study has {len(complete)}")
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                    ax = plot(study)
                    fig = ax.figure
                    fig.set_size_inches(7, 4.5)
                    fig.tight_layout()
                    with atomic_path(plan.sweep_dir / f"{name}.png") as tmp:
                        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")  # keep the outside legend
                    plt.close(fig)
                files[name] = f"{name}.png"
            except Exception as exc:  # noqa: BLE001 - e.g. importance of parameters that never varied
                first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
                notes.append(f"{name}.png skipped: {first}")
        best_run = best.user_attrs.get("run_dir") if best is not None else None
        if best is not None and not (best_run and (Path(best_run) / "run.json").is_file()):
            notes.append(f"best.toml not written: best trial {best.number} has no run.json ({best_run or 'no run'})")
        elif best is not None:
            text, note = best_config_toml(plan, best)
            atomic_write(plan.sweep_dir / "best.toml", text)
            files["best_config"] = "best.toml"
            if note:
                notes.append(note)
    summary = {
        "study": plan.study_name,
        "storage": shown_storage(plan.storage_url),
        "plugin": a.plugin,
        "stage": a.stage,
        "metric": a.metric,
        "direction": a.direction,
        "space": [d.text for d in plan.dims],
        "sampler": a.sampler,
        "pruner": plan.pruner,
        "trials_wanted": a.trials,
        "counts": counts,
        "best": _best_row(best),
        "trials": rows,
        "files": files,
        "notes": notes,
        "command": sys.argv,
    }
    atomic_write_json(plan.sweep_dir / "sweep.json", summary)
    return summary


def _start_parent_run(plan: _Plan) -> None:
    """``--track mlflow[=URI]``: one MLflow run for the study; trials become its nested runs."""
    track = plan.args.track or ""
    kind, _, uri = track.partition("=")
    if kind != "mlflow":
        raise UsageError(f"--track {track!r}: a sweep tracks to mlflow[=URI]")
    try:
        import mlflow

        from . import tracking  # noqa: F401 - the trials' --track needs the core's trackers
    except ImportError:
        raise UsageError(
            "--track mlflow needs MLflow and mlx-core's trackers: pip install 'mlx-core[mlflow]'"
        ) from None
    uri = uri or mlflow.get_tracking_uri()
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(plan.args.plugin)
    if exp is not None:
        exp_id = exp.experiment_id
    else:  # as the trials' tracker would create it: artifacts next to a sqlite store's database
        from .tracking.mlflow import artifact_location

        exp_id = client.create_experiment(plan.args.plugin, artifact_location=artifact_location(uri))
    run = client.create_run(exp_id, run_name=f"sweep {plan.study_name}", tags={"mlx.study": plan.study_name})
    a = plan.args
    for key, value in {"metric": a.metric, "direction": a.direction, "sampler": a.sampler, "pruner": a.pruner,
                       "trials": a.trials, "space": "; ".join(d.text for d in plan.dims)}.items():  # fmt: skip
        client.log_param(run.info.run_id, key, value)
    plan.parent_run = (client, run.info.run_id, uri)


def _end_parent_run(plan: _Plan, summary: dict[str, Any] | None, status: str) -> None:
    if plan.parent_run is None:
        return
    client, run_id, _ = plan.parent_run
    with contextlib.suppress(Exception):
        if summary and summary.get("best"):
            client.log_metric(run_id, f"best_{plan.args.metric}", summary["best"]["value"])
        if (plan.sweep_dir / "sweep.json").is_file():
            client.log_artifact(run_id, str(plan.sweep_dir / "sweep.json"))
    client.set_terminated(run_id, status=status)


def sweep(args: SweepArgs, out: Any, err: Any) -> dict[str, Any]:
    """Run (or continue) the sweep; returns sweep.json's content."""
    optuna = require_optuna()
    plan = _check(args)
    study, storage = _open_study(optuna, plan)
    plan.notes += _recover(optuna, study, storage, plan)
    finished = [t for t in study.get_trials(deepcopy=False) if _counted(t)]
    remaining = max(0, args.trials - len(finished))
    for note in plan.notes:
        err.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    err.print(
        f"study {plan.study_name} in {shown_storage(plan.storage_url)}: {len(finished)} finished trial(s), "
        f"{remaining} to run ({plan.jobs} at a time)",
        highlight=False, markup=False, soft_wrap=True,
    )  # fmt: skip
    if args.track:
        _start_parent_run(plan)
    runner = _Sweep(optuna, plan, study, out, err)
    status, summary = "FAILED", None
    try:
        if remaining:
            study.optimize(
                runner.objective, n_trials=remaining, timeout=args.timeout, n_jobs=plan.jobs,
                catch=(_TrialFailed,), callbacks=[runner.after_trial],
            )  # fmt: skip
        summary = write_results(optuna, study, plan, plots=True)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if summary is None:
            with contextlib.suppress(Exception):
                summary = write_results(optuna, study, plan, plots=False)
        _end_parent_run(plan, summary, status)
    _print_table(out, summary, plan)
    if summary["best"] is None:
        first = next((r["error"] for r in summary["trials"] if r["error"]), "")
        raise NoTrialCompleted(
            f"no trial of study {plan.study_name!r} completed ({summary['counts']}){': ' + first if first else ''}"
        )
    return summary


def _print_table(out: Any, summary: dict[str, Any], plan: _Plan) -> None:
    from rich.table import Table

    keys = [d.key for d in plan.dims]
    metric = plan.args.metric or "value"
    table = Table("trial", "state", metric, *keys, "seconds", "run", "note",
                  title=f"study {plan.study_name} ({plan.args.direction} {metric})", title_justify="left")  # fmt: skip
    best = (summary.get("best") or {}).get("number")
    for r in summary["trials"]:
        value = "" if r["value"] is None else f"{r['value']:.6g}"
        params = [_short(r["params"].get(k, "")) for k in keys]
        mark = " *" if r["number"] == best else ""
        table.add_row(f"{r['number']}{mark}", r["state"], value, *params,
                      f"{r['seconds']:.1f}" if r["seconds"] else "", r["run_dir"] or "", r["error"] or "")  # fmt: skip
    out.print(table)
    if best is not None:
        b = summary["best"]
        out.print(f"best: trial {best} {metric}={b['value']:.6g} {b['params']}", highlight=False)
    for note in summary["notes"]:
        out.print(f"note: {note}", highlight=False)
    out.print(f"results: {plan.sweep_dir} ({', '.join(summary['files'].values()) or 'sweep.json'})", highlight=False)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
