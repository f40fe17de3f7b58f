"""The ``mlx`` command line (typer). Errors become one line on stderr and exit code 2."""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from .errors import Interrupted, MlxError, Terminated

# click's exceptions, from click itself or from the copy newer typers vendor (typer._click)
_click_errors = sys.modules[typer.BadParameter.__module__]
ClickException = _click_errors.ClickException
ClickUsageError = _click_errors.UsageError
NoArgsIsHelpError = getattr(_click_errors, "NoArgsIsHelpError", ())  # click >= 8.2


class MlxGroup(TyperGroup):
    """The top-level command group. Typer catches a ``KeyboardInterrupt`` (Ctrl-C, and SIGTERM
    through ``Terminated``) around the whole invocation and exits 130 silently, before ``main``
    could print the documented line: here, inside the invocation, it becomes ``Interrupted``,
    which typer lets through."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise Interrupted("terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted") from exc


app = typer.Typer(
    cls=MlxGroup,
    name="mlx",
    help="One command from data to a trained, exported, verified model, in any domain a plugin adds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
plugins_app = typer.Typer(help="List, inspect and create plugins.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")
models_app = typer.Typer(help="Models the installed plugins publish (the model hub).", no_args_is_help=True)
app.add_typer(models_app, name="models")
from .cli_runs import runs_app  # noqa: E402 - `mlx runs ...`: its own module, registered with the others

app.add_typer(runs_app, name="runs")

# Piped output (CI logs, `| less`) gets wide tables instead of rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
STATE = {"verbose": False}


def _registry():
    from .plugins import Registry

    return Registry()


def _version(value: bool) -> None:
    if value:
        from .listing import version_line

        print(version_line())
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    STATE["verbose"] = verbose
    if verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logging.getLogger("mlx").addHandler(handler)  # the mlx logger does not propagate to the root


# --- plugins --------------------------------------------------------------------------------
@plugins_app.command("list")
def plugins_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List installed plugins with their status (ok, broken, unavailable here, disabled)."""
    from .listing import list_plugins

    list_plugins(as_json)


@plugins_app.command("info")
def plugins_info(name: str, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Describe one plugin: summary, stages, hardware, config schema, where it is installed."""
    from .config import describe

    reg = _registry()
    rec = reg.records.get(name)
    if rec is None:
        reg.get(name)  # raises the 'unknown plugin' error with suggestions
    assert rec is not None
    data = rec.as_dict()
    info = rec.info
    data["config"] = describe(info.config) if info and info.config else []
    data["options"] = describe(info.options, prefix=f"{name}.") if info and info.options else []
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    out.print(
        f"[bold]{name}[/] {data['version'] or ''}  ({data['status']}{': ' + data['reason'] if data['reason'] else ''})"
    )
    for key in ("summary", "stages", "hardware", "core_api", "requires", "distribution", "location"):
        value = data[key]
        out.print(f"  {key}: {', '.join(value) if isinstance(value, list) else value}", highlight=False)
    for title, rows in (
        ("config", data["config"]),
        (f"options (--set {name}.KEY=VALUE on other plugins' runs)", data["options"]),
    ):
        if not rows:
            continue
        table = Table("key", "type", "default", "description", title=title, title_justify="left")
        for row in rows:
            desc = row["description"] + (f" [{row['constraints']}]" if row["constraints"] else "")
            table.add_row(row["key"], row["type"], json.dumps(row["default"], default=str), desc)
        out.print(table)


@plugins_app.command("new")
def plugins_new(
    name: str,
    directory: Annotated[Optional[Path], typer.Option("--dir", help="Parent folder (default: current).")] = None,
) -> None:
    """Write a new installable plugin package NAME from the template."""
    from .scaffold import create

    path = create(name, directory or Path.cwd())
    out.print(f"created {path}\nnext: pip install -e '{path}[test]' && pytest {path}/tests && mlx run {name} export")


@plugins_app.command("install")
def plugins_install(
    names: Annotated[Optional[list[str]], typer.Argument(help="Plugin names, e.g. segmentation recsys.")] = None,
    hardware: Annotated[
        str, typer.Option("--hardware", help="cpu or cuda: selects the plugin's extras and steps.")
    ] = "",
    requirements: Annotated[
        Optional[Path], typer.Option("-r", "--requirements", help="Restore a lock file from `mlx plugins freeze`.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the installer commands only.")] = False,
) -> None:
    """Install only the named plugins (from plugins/NAME inside a checkout, else mlx-NAME)."""
    from .hardware import has_cuda
    from .install import find_checkout, plan_install, plan_restore, read_lock, run_plan

    checkout = find_checkout()
    if requirements is not None:
        plan = plan_restore(read_lock(requirements), hardware or None, checkout)
    else:
        plan = plan_install(names or [], hardware or ("cuda" if has_cuda() else "cpu"), checkout)
    run_plan(plan, dry_run, lambda line: err.print(f"$ {line}", highlight=False, markup=False, soft_wrap=True))


@plugins_app.command("uninstall")
def plugins_uninstall(
    names: list[str],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the installer commands only.")] = False,
) -> None:
    """Uninstall the named plugins' distributions."""
    from .install import run_plan, uninstall_plan

    run_plan(
        uninstall_plan(names),
        dry_run,
        lambda line: err.print(f"$ {line}", highlight=False, markup=False, soft_wrap=True),
    )


@plugins_app.command("freeze")
def plugins_freeze(
    output: Annotated[Path, typer.Option("-o", "--output", help="Lock file to write.")] = Path("mlx-plugins.lock.toml"),
) -> None:
    """Write a lock file of the installed plugins and the torch/paddle/CUDA versions they run on."""
    from .install import write_lock

    data = write_lock(output)
    out.print(
        f"wrote {output}: {len(data['plugins'])} plugins, torch {data['runtime'].get('torch', 'not installed')}",
        highlight=False,
    )


# --- models ---------------------------------------------------------------------------------
@models_app.command("list")
def models_list(
    plugin: Annotated[Optional[str], typer.Argument(help="Only this plugin's models.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List published model entry points: name, plugin, summary."""
    from .hub import entries

    found = entries(plugin=plugin)
    if as_json:
        print(
            json.dumps(
                [
                    {"name": e.name, "plugin": e.plugin, "summary": e.summary, "signature": e.signature}
                    for e in found.values()
                ],
                indent=2,
            )
        )
        return
    table = Table("model", "plugin", "summary")
    for e in found.values():
        table.add_row(e.name, e.plugin, e.summary)
    out.print(table)


@models_app.command("help")
def models_help(name: str) -> None:
    """Show a model entry point's signature and docstring."""
    from .hub import help as hub_help

    print(hub_help(name))


# --- runs -----------------------------------------------------------------------------------
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key: KEY=VALUE (repeatable).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]


@app.command("run")
def run_cmd(
    plugin: str,
    stage: str,
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML config file.")] = None,
    set_: SetOpt = None,
    device: DeviceOpt = "auto",
    runs_dir: Annotated[Path, typer.Option("--runs-dir", envvar="MLX_RUNS_DIR", help="Where runs go.")] = Path("runs"),
    from_: Annotated[Optional[Path], typer.Option("--from", help="Continue in an earlier run directory.")] = None,
    profile: Annotated[bool, typer.Option("--profile", help="Record a profiler trace of each stage.")] = False,
    track: Annotated[
        Optional[list[str]],
        typer.Option("--track", help="Send the run to a tracker: mlflow[=URI], tensorboard (repeatable; opt-in)."),
    ] = None,
    nproc: Annotated[Optional[int], typer.Option("--nproc", help="Worker processes per node (torchrun).")] = None,
    nnodes: Annotated[Optional[str], typer.Option("--nnodes", help="Nodes: N or MIN:MAX (elastic).")] = None,
    node_rank: Annotated[Optional[int], typer.Option("--node-rank", help="This node's rank (0..N-1).")] = None,
    rdzv_endpoint: Annotated[
        Optional[str], typer.Option("--rdzv-endpoint", help="HOST:PORT of the c10d rendezvous (several nodes).")
    ] = None,
    rdzv_id: Annotated[Optional[str], typer.Option("--rdzv-id", help="Job id, the same on every node.")] = None,
    max_restarts: Annotated[
        Optional[int], typer.Option("--max-restarts", help="Restarts of the worker group after a failure.")
    ] = None,
) -> None:
    """Run PLUGIN's stages (data, model, train, export) up to STAGE (on N processes / M nodes with --nproc, --nnodes)."""
    from .launch import spec_for
    from .plugins import Registry
    from .runner import run
    from .runs import Manifest
    from .tracking import observers

    given = {
        k: v for k, v in dict(nproc=nproc, nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint,
                              rdzv_id=rdzv_id, max_restarts=max_restarts).items() if v is not None
    }  # fmt: skip
    spec = spec_for(config, given)
    registry = Registry()
    if spec.distributed:
        from .launch import run_launched

        run_dir = run_launched(
            registry, plugin, stage, spec, config_file=config, overrides=set_ or [], device=device,
            runs_dir=runs_dir, from_dir=from_, profile=profile, track=track or [], command=sys.argv, console=err,
        )  # fmt: skip
        if not (run_dir / "run.json").exists():
            err.print(f"rank 0 ran on another node: its node keeps run.json; this node kept {run_dir / 'logs'}",
                      highlight=False, soft_wrap=True)  # fmt: skip
            print(run_dir)
            return
        _summary(plugin, Manifest.load(run_dir))
        return
    warn = lambda line: err.print(line, highlight=False, markup=False, soft_wrap=True)  # noqa: E731
    manifest = run(
        registry, plugin, stage, config_file=config, overrides=set_ or [], device=device,
        runs_dir=runs_dir, from_dir=from_, profile=profile, console=err, command=sys.argv,
        observers=observers(track or [], registry, warn),
    )  # fmt: skip
    _summary(plugin, manifest)


def _summary(plugin: str, manifest) -> None:
    """The finished run's stage table, metrics and notes; its directory as the last stdout line."""
    d = manifest.data
    table = Table("stage", "status", "seconds", title=f"{plugin}: {manifest.run_dir}", title_justify="left")
    for name, s in d["stages"].items():
        table.add_row(name, s["status"], f"{s.get('duration_s', 0):.1f}")
    out.print(table)
    if d["metrics"]:
        out.print(
            "metrics: "
            + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in d["metrics"].items()),
            highlight=False,
        )
    for note in d["notes"]:
        out.print(f"note: {note}", highlight=False)
    print(manifest.run_dir)


@app.command("sweep")
def sweep_cmd(
    plugin: str,
    stage: str,
    trials: Annotated[int, typer.Option("--trials", help="Finished trials the study should have.")] = 10,
    metric: Annotated[Optional[str], typer.Option("--metric", help="run.json metric to optimise.")] = None,
    direction: Annotated[Optional[str], typer.Option("--direction", help="minimize or maximize.")] = None,
    space: Annotated[
        Optional[list[str]], typer.Option("--space", help="KEY=uniform|loguniform|int(a,b) or KEY=choice(v,...).")
    ] = None,
    space_from_schema: Annotated[
        Optional[list[str]], typer.Option("--space-from-schema", help="KEY[,KEY]: the field's own bounds/choices.")
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", help="Trials at once (capped at the CPU count).")] = 1,
    storage: Annotated[Optional[str], typer.Option("--storage", help="Optuna storage URL.")] = None,
    study: Annotated[Optional[str], typer.Option("--study", help="Study name.")] = None,
    sampler: Annotated[str, typer.Option("--sampler", help="tpe, random or grid.")] = "tpe",
    pruner: Annotated[str, typer.Option("--pruner", help="median or none.")] = "median",
    prune_after: Annotated[int, typer.Option("--prune-after", help="Completed trials before pruning.")] = 2,
    prune_warmup: Annotated[int, typer.Option("--prune-warmup", help="No pruning at steps below S.")] = 0,
    timeout: Annotated[Optional[float], typer.Option("--timeout", help="Start no trial after S seconds.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Sampler seed.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML config file.")] = None,
    set_: SetOpt = None,
    device: DeviceOpt = "auto",
    runs_dir: Annotated[Path, typer.Option("--runs-dir", envvar="MLX_RUNS_DIR", help="Where runs go.")] = Path("runs"),
    track: Annotated[Optional[str], typer.Option("--track", help="mlflow[=URI]: trials nest in one run.")] = None,
) -> None:
    """Tune PLUGIN on Optuna: every trial an `mlx run PLUGIN STAGE --set ...` (see docs/sweeps.md)."""
    from .sweep import SweepArgs, sweep

    sweep(
        SweepArgs(
            plugin=plugin, stage=stage, metric=metric, direction=direction, trials=trials, space=space or [],
            space_from_schema=space_from_schema or [], jobs=jobs, storage=storage, study=study, sampler=sampler,
            pruner=pruner, prune_after=prune_after, prune_warmup=prune_warmup, timeout=timeout, seed=seed,
            config=config, sets=set_ or [], device=device, runs_dir=runs_dir, track=track,
        ),
        out, err,
    )  # fmt: skip


@app.command("predict")
def predict_cmd(
    plugin: str,
    run_dir: Path,
    inputs: list[str],
    set_: SetOpt = None,
    device: DeviceOpt = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Run PLUGIN's exported model from RUN_DIR on INPUTS (files or text)."""
    from .plugins import Registry
    from .runner import predict

    results, where = predict(Registry(), plugin, run_dir, inputs, overrides=set_ or [], device=device, console=err)
    if as_json:
        print(json.dumps(results, indent=2, default=str))
        return
    keys: list[str] = []
    for r in results:
        keys += [k for k in r if k not in keys]
    table = Table(*keys)
    for r in results:
        table.add_row(*[str(r.get(k, "")) for k in keys])
    out.print(table)
    err.print(f"outputs in {where}", highlight=False)


@app.command("doctor")
def doctor_cmd(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """What this machine has, and whether each plugin can run here (and why not)."""
    from .runner import doctor

    facts = doctor(_registry())
    if as_json:
        print(json.dumps(facts, indent=2))
        return
    out.print(
        f"python {facts['python']} ({facts['executable']}), {facts['platform']}, {facts['cpus']} CPUs", highlight=False
    )
    out.print(f"mlx-core {facts['mlx-core']} (plugin API {facts['core_api']})", highlight=False)
    out.print(f"GPUs: {', '.join(facts['gpus']) or 'none (CUDA not available)'}", highlight=False)
    out.print("libraries: " + (", ".join(f"{k} {v}" for k, v in facts["libraries"].items()) or "none"), highlight=False)
    table = Table("plugin", "version", "hardware", "can run here", "why not")
    for p in facts["plugins"]:
        table.add_row(
            p["name"], p["version"] or "?", ", ".join(p["hardware"]), "yes" if p["can_run_here"] else "no", p["reason"]
        )
    out.print(table)


def _terminate(signum: int, frame: object) -> None:
    raise Terminated("terminated (SIGTERM)")


VERBOSE_FLAGS = ("--verbose", "-v")


def hoist_verbose(args: list[str]) -> list[str]:
    """``--verbose``/``-v`` anywhere before a ``--`` moves to the front, where the top-level
    option lives, so ``mlx run p data --verbose`` works as ``mlx --verbose run p data``."""
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if a in VERBOSE_FLAGS]
    if not flags:
        return args
    return [flags[0], *(a for a in args[:end] if a not in VERBOSE_FLAGS), *args[end:]]


def usage_line(exc: ClickUsageError) -> str:
    """click's usage error (usage, a hint, a blank line, the error) as one line."""
    message = " ".join(exc.format_message().split())
    usage = " ".join(exc.ctx.get_usage().split()) if exc.ctx is not None else ""
    usage = usage.removeprefix("Usage: ")
    return f"{message} (usage: {usage})" if usage else message


def main() -> None:
    """Entry point: run the typer app; user errors become one line and exit code 2."""
    args = hoist_verbose(sys.argv[1:])
    verbose = bool(args) and args[0] in VERBOSE_FLAGS
    signal.signal(signal.SIGTERM, _terminate)  # `kill PID` stops like Ctrl-C: stage marked interrupted
    try:
        # standalone_mode=False: click's errors come here as exceptions (made one line below)
        # instead of being printed as its multi-line usage block
        code = app(args=args, prog_name="mlx", standalone_mode=False)
    except Interrupted as exc:
        err.print(str(exc), highlight=False, markup=False)
        raise SystemExit(exc.exit_code) from None
    except MlxError as exc:
        if verbose:
            traceback.print_exc()
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
    except NoArgsIsHelpError as exc:  # `mlx` or `mlx plugins` alone: the help
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except ClickUsageError as exc:
        err.print(f"error: {usage_line(exc)}", highlight=False, markup=False, soft_wrap=True)
        raise SystemExit(2) from None
    except ClickException as exc:
        err.print(f"error: {' '.join(exc.format_message().split())}", highlight=False, markup=False, soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:  # end of input at a prompt
        err.print("aborted", highlight=False)
        raise SystemExit(1) from None
    except KeyboardInterrupt as exc:  # while the arguments are parsed, before any command runs
        err.print("terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted", highlight=False)
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 - last resort: one line instead of a traceback
        if verbose or os.environ.get("MLX_DEBUG"):
            traceback.print_exc()
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        msg = f"error: {type(exc).__name__}: {first}" if first else f"error: {type(exc).__name__}"
        err.print(f"{msg} (run with --verbose for the traceback)", highlight=False, markup=False, soft_wrap=True)
        raise SystemExit(1) from None
    if code:  # typer.Exit(code) and click's exits return their code in this mode
        raise SystemExit(code)
