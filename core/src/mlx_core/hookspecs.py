"""The contract between the core and every plugin: one hookspec per hook.

pluggy project name: ``"mlx"``. Implement hooks with ``mlx_core.hookimpl``; an implementation
may accept fewer arguments than the spec offers (pluggy passes only the ones it names), so
the contract can grow without breaking plugins.

Stage hooks are ``firstresult``: the runner calls ``pm.hook.mlx_<stage>(ctx=..., ...)`` and the
first non-``None`` answer wins. A *domain* plugin therefore answers only for its own runs:

    @hookimpl
    def mlx_train(ctx, data, model):
        if ctx.plugin != "segmentation":
            return None
        ...

A *cross-cutting* plugin (quant, custom_ops) wraps other plugins' stages with a hook wrapper,
which sees every run and can change the arguments' objects, the result, or add artifacts:

    @hookimpl(wrapper=True)
    def mlx_export(ctx, data, model):
        result = yield            # the domain plugin's export runs here
        opts = ctx.options("quant")
        if opts and opts.scheme != "none":
            ctx.add_artifact(quantize(model, ...), kind="quantized")
        return result
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("mlx")
hookimpl = pluggy.HookimplMarker("mlx")


@hookspec(firstresult=True)
def mlx_plugin() -> Any:
    """Describe the plugin. Implemented by every plugin, exactly once.

    Inputs: none. Returns: an ``mlx_core.PluginInfo`` (name, summary, stages, hardware, config
    class, options class, core API range, required libraries). Called while listing plugins,
    so it must be cheap: no torch/paddle/transformers imports here or at module top level.
    The core calls each plugin's own implementation directly, never the combined hook.
    """


@hookspec(firstresult=True)
def mlx_data(ctx: Any) -> Any:
    """Build the run's data. Implemented by domain plugins that list ``"data"`` in their stages.

    Inputs: ``ctx`` (``mlx_core.RunContext``: ``ctx.plugin``, ``ctx.config`` with the validated
    config, ``ctx.device``, ``ctx.run_dir``, logging, progress, artifacts, metrics).
    Returns: any object the plugin's later stages understand (datasets, loaders, paths), or
    ``None`` when ``ctx.plugin`` is not this plugin. Files it writes go under ``ctx.run_dir``.
    With ``--from``, ``ctx.resumed`` is true: reuse what the earlier run wrote there.
    """


@hookspec(firstresult=True)
def mlx_model(ctx: Any, data: Any) -> Any:
    """Build (and, from ``config.model.weights``, load) the model. Implemented by domain plugins.

    Inputs: ``ctx``; ``data``: what ``mlx_data`` returned (or ``None`` if the plugin has no data
    stage). Returns: the model object, or ``None`` when ``ctx.plugin`` is not this plugin.
    A model with random weights must say so: ``ctx.record("trained", False)``.
    Cross-cutting plugins may wrap this hook to swap layers of any plugin's model.
    """


@hookspec(firstresult=True)
def mlx_train(ctx: Any, data: Any, model: Any) -> Any:
    """Train ``model`` on ``data``. Implemented by domain plugins that list ``"train"``.

    Inputs: ``ctx``, ``data`` (from ``mlx_data``), ``model`` (from ``mlx_model``).
    Returns: the trained model (passed on to export), or ``None`` when not this plugin's run.
    Expected: metrics through ``ctx.log_metrics`` each epoch, a checkpoint each epoch under
    ``ctx.run_dir`` written atomically, resume from the last checkpoint when ``ctx.resumed``.
    """


@hookspec(firstresult=True)
def mlx_export(ctx: Any, data: Any, model: Any) -> Any:
    """Export the trained model to deployable artifacts. Implemented by domain plugins.

    Inputs: ``ctx``, ``data``, ``model`` (the trained model). Returns: a dict describing the
    exports (format -> path and checks), or ``None`` when not this plugin's run. Each artifact
    is registered with ``ctx.add_artifact`` (size and sha256 go into the manifest); a failed
    parity check raises ``mlx_core.StageFailed``. Cross-cutting plugins wrap this hook to add
    artifacts of their own (e.g. a quantized model) to any plugin's export.
    """


@hookspec(firstresult=True)
def mlx_predict(ctx: Any, inputs: list[str]) -> Any:
    """Run an exported artifact of a finished run on user input. Optional; domain plugins.

    Inputs: ``ctx`` (``ctx.run_dir`` is the finished run, ``ctx.config`` its config with
    ``--set`` overrides applied, ``ctx.output_dir`` where to write outputs), ``inputs``: the
    strings given on the command line (paths, sentences, ...).
    Returns: a list of dicts, one per input, that the CLI prints as a table (or JSON with
    ``--json``); ``None`` when ``ctx.plugin`` is not this plugin.
    """


@hookspec
def mlx_models() -> Any:
    """Publish named model entry points, like the functions of a ``hubconf.py``. Optional.

    Inputs: none. Returns: a dict ``{name: callable}``; each callable takes keyword arguments
    (documented in its docstring, whose first line is its summary) and returns a ready model,
    e.g. ``deeplabv3_mobilenet_v3_large(num_classes=21, weights=None)``. Names are global
    across plugins. Like ``mlx_plugin`` it is called while listing, so define the callables in
    a light module and import heavy libraries inside them. Every implementation's dict is
    collected (this hook is not ``firstresult``); ``mlx_core.hub.load(name, **kwargs)`` calls one.
    """


@hookspec
def mlx_trackers() -> Any:
    """Publish run trackers (MLflow, TensorBoard, W&B, ...) by name. Optional.

    Inputs: none. Returns: a dict ``{name: factory}``. ``factory(value)`` gets what follows
    ``=`` in ``--track NAME=VALUE`` (or ``None``) and returns a ``mlx_core.observers.RunObserver``
    (``start(manifest)``, ``metrics(stage, metrics, step)``, ``end(manifest, status)``; and, for
    ``mlx runs sync``, optionally ``sync(manifest, status)``, idempotent). The factory runs
    before the run starts: raise ``mlx_core.UsageError`` there for a bad value or a missing
    library (name the extra to install); connect in ``start``. The core wraps every tracker in
    ``SafeObserver``, so a failure later is one warning and never fails the run. Implemented by
    modules in the entry-point group ``mlx.trackers`` (loaded only when a run asks for a tracker;
    the built-in ``mlflow`` and ``tensorboard`` are two of them) and by ``mlx`` plugins. Import the
    tracker's library inside the factory or the observer, never at module level.
    """
