"""Stage ordering: ``mlx run P S`` runs data -> model -> train -> export up to S in one run dir."""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from . import __version__
from . import config as cfgmod
from .context import RunContext, make_progress
from .dist import DistInfo
from .errors import DeviceError, MlxError, PluginError, Pruned, RunError, Terminated, UsageError
from .hardware import has_cuda
from .info import STAGES
from .plugins import PluginRecord, Registry, api_version
from .profiling import profile_stage
from .runs import (
    MANIFEST,
    Manifest,
    RankManifest,
    declared_versions,
    loaded_versions,
    new_run_dir,
    now_iso,
    run_lock,
    sweep_partial_files,
)  # fmt: skip


def resolve_device(requested: str, rec: PluginRecord) -> str:
    hardware = rec.info.hardware if rec.info else ("cpu",)
    if requested not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"unknown device {requested!r}: expected auto, cpu or cuda")
    if requested == "auto":
        return "cuda" if "cuda" in hardware and has_cuda() else "cpu"
    if requested == "cuda" and not has_cuda():
        raise DeviceError("--device cuda: no NVIDIA GPU found on this machine (nvidia-smi lists none)")
    if requested not in hardware:
        raise DeviceError(f"plugin {rec.name!r} does not run on {requested}; it supports: {', '.join(hardware)}")
    return requested


def check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise UsageError(f"unknown stage {stage!r}: expected one of {', '.join(STAGES)}")


def _versions(rec: PluginRecord) -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "mlx-core": __version__,
        rec.distribution or rec.name: rec.version or "unknown",
        **declared_versions(rec.info.requires if rec.info else ()),  # what the plugin says it uses
        **loaded_versions(),
    }


def run(
    registry: Registry,
    plugin: str,
    stage: str,
    *,
    config_file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    device: str = "auto",
    runs_dir: str | Path = "runs",
    from_dir: str | Path | None = None,
    profile: bool = False,
    console: Console | None = None,
    command: list[str] | None = None,
    observers: list[Any] | None = None,
    run_dir: str | Path | None = None,
    launch: dict[str, Any] | None = None,
) -> Manifest:
    """Run ``plugin``'s stages up to ``stage``; returns the final manifest.

    ``observers`` (``mlx_core.observers.RunObserver``) hear the start, every ``ctx.log_metrics``
    call and the end with the run's status. ``run_dir`` and ``launch`` come from a launched
    worker (``mlx_core.worker``): the directory every rank agreed on and what ``run.json``
    records of the launch. On ranks other than 0 (``ctx.dist``) the manifest is kept in memory
    only, no lock is taken and the export stage is left to rank 0."""
    dist = DistInfo.from_env()
    observers = list(observers or []) if dist.is_main else []
    if os.environ.get("MLX_SWEEP_STUDY"):  # this run is a trial of `mlx sweep`: report to its pruner
        from .sweep import trial_observer

        observers += [o for o in (trial_observer(),) if o is not None]
    console = console or Console(stderr=True)
    # a rank on another node may not have the earlier run.json: it then runs on the job's config
    rec, earlier, dev, cfg, options = prepare(
        registry, plugin, stage, config_file=config_file, overrides=overrides, device=device,
        from_dir=from_dir if dist.is_main or (from_dir and (Path(from_dir) / MANIFEST).exists()) else None,
    )  # fmt: skip

    # absolute: ctx.path() resolves its paths, so plugins may take them relative_to(ctx.run_dir)
    # whatever --runs-dir (default: "runs", relative to the working directory) was given
    if run_dir is not None:
        run_dir = Path(run_dir).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        run_dir = (Path(from_dir) if from_dir is not None else new_run_dir(Path(runs_dir), plugin)).resolve()
    with run_lock(run_dir) if dist.is_main else contextlib.nullcontext():
        manifest = _manifest(run_dir, rec, stage, command, console, earlier, dist)
        if launch is not None:
            manifest.data["launch"] = {**manifest.data.get("launch", {}), **launch, "world_size": dist.world_size}
            manifest.data["launch"].pop("error", None)
        manifest.data.update(
            device=dev,
            target=stage,
            config=cfg.model_dump(mode="json") if cfg is not None else {},
            options={k: v.model_dump(mode="json") for k, v in options.items()},
        )
        manifest.save()
        for observer in observers:
            observer.start(manifest)
        todo = [s for s in STAGES[: STAGES.index(stage) + 1] if dist.is_main or s != "export"]
        console.print(f"run {run_dir}", highlight=False, soft_wrap=True)
        outputs: dict[str, Any] = {"data": None, "model": None}
        with make_progress(console) as bar:
            ctx = RunContext(
                plugin=plugin, stage=todo[0], target=stage, config=cfg, device=dev, run_dir=run_dir,
                manifest=manifest, resumed=from_dir is not None, profile=profile,
                option_values=options, console=console, progress_bar=bar, observers=observers,
                registry=registry, dist=dist,
            )  # fmt: skip
            _run_stages(registry, rec, ctx, todo, outputs, bar)
        manifest.data["status"] = "completed"
        manifest.save()
        for observer in observers:
            observer.end(manifest, "completed")
    return manifest


def prepare(
    registry: Registry,
    plugin: str,
    stage: str,
    *,
    config_file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    device: str = "auto",
    from_dir: str | Path | None = None,
) -> tuple[PluginRecord, Manifest | None, str, Any, dict[str, Any]]:
    """What a run checks before any work: the plugin, stage, ``--from`` run, device and config
    (one-line errors). Returns (record, earlier manifest, device, config, options); the
    launcher calls it too, before it starts any worker."""
    rec = registry.get(plugin)
    check_stage(stage)
    info = rec.info
    assert info is not None
    base: dict[str, Any] = {}
    earlier: Manifest | None = None
    if from_dir is not None:
        earlier = Manifest.load(from_dir)
        if earlier.data["plugin"] != plugin:
            raise RunError(f"--from {from_dir} is a run of plugin {earlier.data['plugin']!r}, not {plugin!r}")
        base = earlier.data.get("config", {})
    dev = resolve_device(device, rec)
    if info.config is None:
        if overrides or config_file:
            raise UsageError(f"plugin {plugin!r} takes no config")
        return rec, earlier, dev, None, {}
    cfg, options = cfgmod.resolve(
        info.config, base=base, file=config_file, overrides=overrides, options=registry.options_classes()
    )
    return rec, earlier, dev, cfg, options


def _manifest(
    run_dir: Path, rec: PluginRecord, stage: str, command: list[str] | None, console: Console,
    earlier: Manifest | None, dist: DistInfo,
) -> Manifest:  # fmt: skip
    """The run's manifest: a ``--from`` run's, re-opened, or a new one; in memory only on a rank
    other than 0 (rank 0 alone writes run.json)."""
    if not dist.is_main:
        data = dict(earlier.data) if earlier is not None else {"plugin": rec.name, "stages": {}, "metrics": {},
                                                                 "artifacts": [], "records": {}, "notes": []}  # fmt: skip
        return RankManifest(run_dir, data)
    if earlier is not None:
        return _open_manifest(run_dir, rec, stage, command, console)
    return Manifest.create(
        run_dir, plugin=rec.name, plugin_version=rec.version, command=command, target=stage, versions=_versions(rec),
        host={"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count()},
    )  # fmt: skip


def _open_manifest(
    run_dir: Path, rec: PluginRecord, stage: str, command: list[str] | None, console: Console
) -> Manifest:
    """A ``--from`` run's manifest, re-read under the lock, with this invocation recorded and the
    temporary files an interrupted writer left removed (no live writer owns one under the lock)."""
    manifest = Manifest.load(run_dir)
    invocation: dict[str, Any] = {"at": now_iso(), "command": command, "stage": stage}
    swept = [str(p.relative_to(run_dir)) for p in sweep_partial_files(run_dir)]
    if swept:
        invocation["removed_partial_files"] = swept
        console.print(
            f"removed {len(swept)} partial file(s) an interrupted run left: {', '.join(swept)}",
            highlight=False, soft_wrap=True,
        )  # fmt: skip
    manifest.data.setdefault("invocations", []).append(invocation)
    return manifest


def _run_stages(registry: Registry, rec: PluginRecord, ctx: RunContext, todo: list[str], outputs: dict[str, Any],
                bar: Any) -> None:  # fmt: skip
    """The stages in order under one progress bar; observers hear the end of a run that stops."""
    overall = bar.add_task(f"{rec.name}: {ctx.target}", total=len(todo))
    try:
        for i, name in enumerate(todo, start=1):
            bar.update(overall, description=f"{rec.name}: stage {i}/{len(todo)} {name}")
            _run_one(registry, rec, ctx, name, outputs)
            bar.advance(overall)
    except BaseException:
        for observer in ctx.observers:
            observer.end(ctx.manifest, ctx.manifest.data.get("status", "failed"))
        raise


def _run_one(registry: Registry, rec: PluginRecord, ctx: RunContext, name: str, outputs: dict[str, Any]) -> None:
    manifest, info = ctx.manifest, rec.info
    assert info is not None
    if name not in info.stages:
        manifest.update_stage(name, status="skipped", reason=f"{rec.name} has no {name} stage")
        return
    ctx.stage = name
    manifest.update_stage(name, status="running", started=now_iso(), error=None)
    manifest.data["status"] = "running"
    t0 = time.perf_counter()
    trace = ctx.run_dir / "profile" / f"{name}.trace.json"
    status, error = "failed", None
    try:
        prof = profile_stage(info.profiler, trace, ctx.device) if ctx.profile else contextlib.nullcontext()
        with prof:
            result = registry.call_stage(name, ctx=ctx, data=outputs["data"], model=outputs["model"])
        if result is None:
            raise PluginError(
                f"plugin {rec.name!r} declares stage {name!r} but its mlx_{name} returned nothing for its own run"
            )
        if name in ("data", "model"):
            outputs[name] = result
        elif name == "train":
            outputs["model"] = result
        status = "completed"
    except KeyboardInterrupt as exc:
        status = "interrupted"
        error = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted by the user (Ctrl-C)"
        raise
    except MlxError as exc:
        error = str(exc)
        status = "pruned" if isinstance(exc, Pruned) else "failed"
        raise
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        manifest.data["status"] = status if status != "completed" else "running"
        manifest.data.setdefault("versions", {}).update(loaded_versions())
        manifest.update_stage(
            name, status=status, finished=now_iso(), duration_s=round(time.perf_counter() - t0, 3), error=error
        )
        if ctx.profile and trace.exists():
            manifest.add_artifact(name, trace, kind="profile")


def predict(
    registry: Registry,
    plugin: str,
    run_dir: str | Path,
    inputs: list[str],
    *,
    overrides: list[str] | tuple[str, ...] = (),
    device: str = "auto",
    console: Console | None = None,
) -> tuple[list[dict[str, Any]], Path]:
    """Run ``plugin``'s ``mlx_predict`` on ``inputs`` with the artifacts of a finished run."""
    console = console or Console(stderr=True)
    rec = registry.get(plugin)
    manifest = Manifest.load(run_dir)
    if manifest.data["plugin"] != plugin:
        raise RunError(f"{run_dir} is a run of plugin {manifest.data['plugin']!r}, not {plugin!r}")
    if not rec.provides("predict"):
        raise UsageError(f"plugin {plugin!r} has no predict command")
    if not inputs:
        raise UsageError("mlx predict needs at least one input")
    info = rec.info
    assert info is not None
    dev = resolve_device(device, rec)
    cfg, options = (None, {})
    if info.config is not None:
        cfg, options = cfgmod.resolve(
            info.config, base=manifest.data.get("config", {}), overrides=overrides, options=registry.options_classes()
        )
    # a folder of its own per call (two predicts in one second do not share one), removed again
    # if the plugin fails before writing anything into it
    out = Path(run_dir) / "predictions" / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    out.mkdir(parents=True)
    ctx = RunContext(
        plugin=plugin, stage="predict", target="predict", config=cfg, device=dev, run_dir=Path(run_dir),
        manifest=manifest, resumed=True, option_values=options, console=console, output_dir=out, registry=registry,
    )  # fmt: skip
    try:
        result = registry.call_stage("predict", ctx=ctx, inputs=list(inputs))
    except BaseException:
        with contextlib.suppress(OSError):
            out.rmdir()  # only when empty
        raise
    if result is None:
        raise PluginError(f"plugin {plugin!r} returned nothing from mlx_predict")
    return list(result), out


def doctor(registry: Registry) -> dict[str, Any]:
    """Facts about this machine and every plugin: what can run here, and why not."""
    import importlib.metadata as md

    from .hardware import gpu_names

    libs = {}
    from .libraries import DOCTOR_DISTRIBUTIONS

    for dist in DOCTOR_DISTRIBUTIONS:
        try:
            libs[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    plugins = []
    for r in registry.listed():
        d = r.as_dict()
        d["can_run_here"] = r.usable
        plugins.append(d)
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "mlx-core": __version__,
        "core_api": api_version(),
        "gpus": list(gpu_names()),
        "cuda_available": has_cuda(),
        "libraries": libs,
        "plugins": plugins,
    }
