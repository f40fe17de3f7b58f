"""The contract between the core and every plugin: one hookspec per hook.

pluggy project name: ``"mlx"``. Implement hooks with ``mlx_core.hookimpl``; an implementation
may accept fewer arguments than the spec offers (pluggy passes only the ones it names), so
the contract can grow without breaking plugins.

**Domain plugins** (API 1.2) name each stage's function once, in their description, and write
no stage hooks at all; the core's built-in implementation of each stage hook (registered last,
``trylast``) calls the function of the plugin whose run it is::

    @hookimpl
    def mlx_plugin():
        return PluginInfo(name="segmentation", summary="...", config=SegmentationConfig, stages={
            "data": "mlx_segmentation.data:build_data",      # imported when a run reaches it
            "model": "mlx_segmentation.model:build_model",
            "train": "mlx_segmentation.train:train",
            "export": "mlx_segmentation.export:export",
            "predict": "mlx_segmentation.predict:predict",
            "serve": "mlx_segmentation.serve:serve",
        })

The functions take the arguments the hook below offers (``ctx``, ``data``, ``model``,
``inputs``), or fewer. Plugins written for API 1.0/1.1 (a hook function per stage that returns
``None`` unless ``ctx.plugin`` is its own name) keep working: stage hooks are ``firstresult``,
so such a hook answers for its own runs before the built-in one is reached.

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

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # RunContext pulls in rich.progress: not needed to list plugins
    from collections.abc import Callable

    from .context import RunContext
    from .contract import Example, Split
    from .info import PluginInfo
    from .observers import RunObserver
    from .serving import Predictor

hookspec = pluggy.HookspecMarker("mlx")
hookimpl = pluggy.HookimplMarker("mlx")


@hookspec(firstresult=True)
def mlx_plugin() -> PluginInfo:
    """Describe the plugin. Implemented by every plugin, exactly once.

    Inputs: none. Returns: an ``mlx_core.PluginInfo`` (name, summary, stage table, hardware,
    config class, options class, core API range, required libraries). Called while listing
    plugins, so it must be cheap: no torch/paddle/transformers imports here or at module top
    level. The core calls each plugin's own implementation directly, never the combined hook.

    .. versionadded:: 1.0
    .. versionchanged:: 1.2 ``PluginInfo.stages`` may be a stage table ``{stage: "module:function"}``.
    """


@hookspec(firstresult=True)
def mlx_data(ctx: RunContext) -> Any:
    """Build the run's data. Provided by domain plugins that have a ``data`` stage.

    Inputs: ``ctx`` (``ctx.plugin``, ``ctx.config`` with the validated config, ``ctx.device``,
    ``ctx.run_dir``, logging, progress, artifacts, metrics). Returns: any object the plugin's
    later stages understand (datasets, loaders, paths); it is passed on as ``data``. Files it
    writes go under ``ctx.run_dir``. With ``--from``, ``ctx.resumed`` is true: reuse what the
    earlier run wrote there. An old-style hook function returns ``None`` for other plugins' runs.

    .. versionadded:: 1.0
    .. versionchanged:: 1.2 provided through the stage table; the core dispatches.
    """


@hookspec(firstresult=True)
def mlx_model(ctx: RunContext, data: Any) -> Any:
    """Build (and, from ``config.model.weights``, load) the model. Provided by domain plugins.

    Inputs: ``ctx``; ``data``: what the data stage returned (``None`` without a data stage).
    Returns: the model object (for torch plugins a ``torch.nn.Module``, which cross-cutting
    plugins such as custom_ops and quant rely on). A model with random weights must say so:
    ``ctx.record("trained", False)``. Cross-cutting plugins wrap this hook to swap layers.

    .. versionadded:: 1.0
    .. versionchanged:: 1.2 provided through the stage table; the core dispatches.
    """


@hookspec(firstresult=True)
def mlx_train(ctx: RunContext, data: Any, model: Any) -> Any:
    """Train ``model`` on ``data``. Provided by domain plugins that have a ``train`` stage.

    Inputs: ``ctx``, ``data`` (from the data stage), ``model`` (from the model stage).
    Returns: the trained model (passed on to export). Expected: metrics through
    ``ctx.log_metrics`` each epoch with ``step=epoch`` (trackers and sweeps hear them), a
    checkpoint each epoch under ``ctx.run_dir`` written atomically, resume from the last
    checkpoint when ``ctx.resumed``.

    .. versionadded:: 1.0
    .. versionchanged:: 1.2 provided through the stage table; the core dispatches.
    """


@hookspec(firstresult=True)
def mlx_export(ctx: RunContext, data: Any, model: Any) -> dict[str, Any]:
    """Export the trained model to deployable artifacts. Provided by domain plugins.

    Inputs: ``ctx``, ``data``, ``model`` (the trained model). Returns: a dict describing the
    exports (format -> path and checks). Each artifact is registered with ``ctx.add_artifact``
    (size and sha256 go into the manifest); a failed parity check raises
    ``mlx_core.StageFailed``. Cross-cutting plugins wrap this hook to add artifacts of their
    own (e.g. a quantized model) to any plugin's export.

    .. versionadded:: 1.0
    .. versionchanged:: 1.2 provided through the stage table; the core dispatches.
    """


@hookspec(firstresult=True)
def mlx_predict(ctx: RunContext, inputs: list[str]) -> list[dict[str, Any]]:
    """Run an exported artifact of a finished run on user input. Optional; domain plugins.

    Inputs: ``ctx`` (``ctx.run_dir`` is the finished run, ``ctx.config`` its config with
    ``--set`` overrides applied, ``ctx.output_dir`` where to write outputs), ``inputs``: the
    strings given on the command line (paths, sentences, ...).
    Returns: a list of dicts, one per input, that the CLI prints as a table (or JSON with
    ``--json``).

    .. versionadded:: 1.0
    .. versionchanged:: 1.2 provided through the stage table (key ``predict``).
    """


@hookspec(firstresult=True)
def mlx_serve(ctx: RunContext, format: str | None) -> Predictor:
    """A loaded predictor of a finished run: what ``mlx serve`` serves. Optional; domain plugins
    (stage table key ``serve``), and third-party plugins serve the same way.

    Inputs: ``ctx`` (``ctx.run_dir`` the finished run, ``ctx.config`` its config with ``--set``
    overrides, ``ctx.device``, ``ctx.manifest``); ``format``: the exported format to load
    (``mlx serve --format``), ``None`` for the plugin's default. Load the exported artifact with
    its own runtime (onnxruntime, ExecuTorch, TorchScript, a ``save_pretrained`` folder, Paddle
    Inference), never the training code, and pass every file or folder through
    ``ctx.verify_artifact(path)`` before loading it: it checks the sha256 run.json recorded.
    Returns: an ``mlx_core.Predictor``: pydantic ``request``/``response`` models (subclass
    ``mlx_core.Request``; images typed ``mlx_core.ImageBytes``), ``prepare(request)`` (decode
    and check one input; raise ``DataError`` for bad input), ``predict(items)`` (one response
    per item), ``batches`` (the export takes a batch dimension), optionally ``page`` (HTML for
    ``/``), ``examples`` and ``facts``. A plugin's ``predict`` entry should run the same
    predictor (``Predictor.run``) so ``mlx predict`` and ``mlx serve`` never disagree.

    .. versionadded:: 1.3
    """


@hookspec(firstresult=True)
def mlx_examples(ctx: RunContext, data: Any, n: int, split: Split) -> list[Example]:
    """Model inputs and targets drawn from the run's data: the cross-plugin data contract.

    Provided by domain plugins whose model other plugins may process (stage table key
    ``examples``); called by cross-cutting plugins through ``ctx.examples(data, n, split)``:
    quant calibrates on ``split="calibration"`` and scores on ``split="eval"``.
    Inputs: ``ctx``; ``data``: what this run's data stage returned; ``n``: how many examples at
    most; ``split``: ``"calibration"`` or ``"eval"``. Returns: a list of at most ``n``
    ``(inputs, target)`` pairs (``mlx_core.contract.Example``): ``inputs`` a tuple of batched
    tensors such that ``model(*inputs)`` runs, ``target`` a tensor or ``None``. The
    conformance kit checks the shape of the answer.

    .. versionadded:: 1.2
    """


@hookspec
def mlx_models() -> dict[str, Callable[..., Any]]:
    """Publish named model entry points, like the functions of a ``hubconf.py``. Optional.

    Inputs: none. Returns: a dict ``{name: callable}``; each callable takes keyword arguments
    (documented in its docstring, whose first line is its summary) and returns a ready model,
    e.g. ``deeplabv3_mobilenet_v3_large(num_classes=21, weights=None)``. Names are global
    across plugins. Like ``mlx_plugin`` it is called while listing, so define the callables in
    a light module and import heavy libraries inside them. Every implementation's dict is
    collected (this hook is not ``firstresult``); ``mlx_core.hub.load(name, **kwargs)`` calls one.

    .. versionadded:: 1.0
    """


@hookspec
def mlx_trackers() -> dict[str, Callable[[str | None], RunObserver]]:
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

    .. versionadded:: 1.2
    """
