"""Quantize the model of another plugin's finished run (``--set source.run=runs/<plugin>/<run>``).

The source plugin rebuilds its own data and model through its hooks (its data stage runs with
``resumed=True`` on the source run directory, so generated data is reused, never regenerated),
then the run's trained weights are loaded from its newest checkpoint: a ``checkpoints/*.pt`` file
holding a dict with a ``"model"`` (or ``"state_dict"``) state dict. Nothing is written into the
source run: its stages log into a scratch copy of its manifest kept in this run.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlx_core import ConfigError, DataError, RunContext, RunError
from mlx_core import config as cfgmod
from mlx_core.runs import Manifest


@dataclass
class SourceRun:
    run_dir: Path
    plugin: str
    registry: Any
    ctx: RunContext
    data: Any
    manifest: Manifest


def source_registry() -> Any:
    """The installed plugins (a seam for tests, which register plugins by hand)."""
    from mlx_core.plugins import Registry

    return Registry()


def load_source(ctx) -> SourceRun:
    run = Path(ctx.config.source.run).expanduser()
    manifest = Manifest.load(run)  # RunError (exit 2) when it is not a run directory
    plugin = manifest.data["plugin"]
    if plugin == "quant":
        raise RunError(f"source.run {run} is a quant run; give a run of the plugin whose model to quantize")
    exported = [a for a in manifest.artifacts("model") if a.get("stage") == "export"]
    if not manifest.completed("export") or not exported:
        raise DataError(
            f"source.run {run} has no exported model (its export stage is {manifest.stage_status('export')}); "
            f"finish it first: mlx run {plugin} export --from {run}"
        )
    registry = source_registry()
    rec = registry.get(plugin)
    if rec.info is None or rec.info.config is None:
        raise RunError(f"source.run {run}: plugin {plugin!r} has no config to rebuild its model from")
    try:
        cfg, options = cfgmod.resolve(rec.info.config, base=manifest.data.get("config", {}))
    except ConfigError as exc:
        raise RunError(f"source.run {run}: its config no longer validates against {plugin}: {exc}") from None
    scratch = Manifest(ctx.path("source"), copy.deepcopy(manifest.data))
    sctx = RunContext(
        plugin=plugin, stage="data", target="model", config=cfg, device="cpu", run_dir=run, manifest=scratch,
        resumed=True, console=ctx.console, progress_bar=ctx.progress_bar, registry=registry,
    )  # fmt: skip
    ctx.log(f"[data] rebuilding {plugin}'s data from {run}")
    data = registry.call_stage("data", ctx=sctx)
    if data is None:
        raise RunError(f"source.run {run}: plugin {plugin!r} returned no data")
    ctx.record("source", {"run": str(run), "plugin": plugin, "exported": [a["path"] for a in exported],
                          "trained": manifest.data.get("records", {}).get("trained")})  # fmt: skip
    return SourceRun(run, plugin, registry, sctx, data, manifest)


def newest_checkpoint(run: Path) -> tuple[Path, dict[str, Any]] | None:
    import torch

    files = sorted((run / "checkpoints").glob("*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for f in files:
        try:
            state = torch.load(f, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - not a checkpoint of the convention: try the next one
            continue
        for key in ("model", "state_dict"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                return f, state[key]
    return None


def saved_pretrained(src: SourceRun) -> Path | None:
    """The folder of the newest ``save_pretrained`` model the source run exported, if any."""
    for a in reversed(src.manifest.artifacts("model")):
        folder = (src.run_dir / a["path"]).parent
        if a.get("format") in ("save_pretrained", "transformers") and (folder / "config.json").is_file():
            return folder
    return None


def source_model(ctx, src: SourceRun) -> Any:
    src.ctx.stage = "model"
    model = src.registry.call_stage("model", ctx=src.ctx, data=src.data)
    if model is None:
        raise RunError(f"source.run {src.run_dir}: plugin {src.plugin!r} returned no model")
    from .ptq import require_torch_module

    model = require_torch_module(model, src.plugin)
    found = newest_checkpoint(src.run_dir)
    trained = bool(src.manifest.data.get("records", {}).get("trained"))
    pretrained = saved_pretrained(src)
    if found is None and pretrained is not None and hasattr(type(model), "from_pretrained"):
        # a Hugging Face model exported with save_pretrained (the translation plugin's convention)
        model = type(model).from_pretrained(pretrained)
        ctx.log(f"[model] weights from {pretrained} (save_pretrained)")
        ctx.record("source_weights", str(pretrained))
    elif found is not None:
        path, state = found
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise DataError(f"checkpoint {path} does not fit {src.plugin}'s model: {exc}".splitlines()[0]) from None
        ctx.log(f"[model] weights from {path}")
        ctx.record("source_weights", str(path))
    else:
        # the weights are the rebuilt model's initial ones, whatever the source run trained
        ctx.note(f"{src.run_dir} has no loadable checkpoint; the model was rebuilt by {src.plugin} from the run's "
                 f"config and seed with untrained weights (trained=false; the source run recorded trained={trained})")  # fmt: skip
        trained = False
    ctx.record("trained", trained)
    return model


def export_source(ctx, src: SourceRun, model: Any) -> dict[str, Any]:
    from .ptq import quantize_model

    cfg = ctx.config.source
    fp32 = None
    for a in reversed(src.manifest.artifacts("model")):
        if a.get("format") == "executorch" and (src.run_dir / a["path"]).is_file():
            fp32 = src.run_dir / a["path"]
            break
    report = quantize_model(ctx, model, src.data, list(cfg.schemes), cfg.calibration_batches, cfg.eval_examples,
                            ("export",), fp32_pte=fp32, source_ctx=src.ctx, gate=ctx.config.gate,
                            gate_prefix="gate.")  # fmt: skip
    report["source"] = {"run": str(src.run_dir), "plugin": src.plugin}
    from .report import plot_ptq

    with ctx.atomic_path("export", "quant_report.png") as tmp:
        plot_ptq(report, tmp, title=f"{src.plugin} ({src.run_dir.name})")
    ctx.add_artifact(ctx.path("export", "quant_report.png"), kind="chart")
    return report
