"""Conformance kit for plugin authors: reuse it in your plugin's own tests.

Subclass ``PluginConformance`` and name your plugin; pytest collects the checks::

    from mlx_core.testing import PluginConformance

    class TestConformance(PluginConformance):
        plugin = "myplugin"
        overrides = ["data.size=16"]     # keep the data-stage run small

Or call the functions directly (``check_description``, ``run_stage``). The plugin must be
*installed* (its entry point in the ``mlx`` group), exactly as users will have it. Installed as
a pytest plugin (entry point ``pytest11``), this module also provides the fixtures
``mlx_registry`` and ``mlx_run``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .config import describe
from .info import STAGES, PluginInfo
from .plugins import OK, PluginRecord, Registry
from .runs import Manifest


def load(name: str) -> PluginRecord:
    """The installed plugin's record, failing with its status and reason if it is not usable."""
    reg = Registry()
    rec = reg.records.get(name)
    assert rec is not None, f"plugin {name!r} is not installed (entry points in group 'mlx': {sorted(reg.records)})"
    assert rec.status == OK, f"plugin {name!r} is {rec.status}: {rec.reason}"
    return rec


def check_description(name: str) -> PluginInfo:
    """The description is valid, names the plugin, and every declared stage has a hook."""
    rec = load(name)
    info = rec.info
    assert isinstance(info, PluginInfo)
    assert info.name == name
    assert info.summary.strip(), "summary must not be empty"
    assert not info.problems(), info.problems()
    for stage in info.stages:
        assert rec.provides(stage) or f"mlx_{stage}" in rec.hooks, f"declares {stage} but provides no mlx_{stage}"
    return info


def check_stage_table(name: str) -> dict[str, Any]:
    """Every entry of the plugin's stage table imports to a function that takes only arguments
    the core passes (``ctx``, ``data``, ``model``, ``inputs``; ``n``, ``split`` for examples)."""
    import inspect

    from .plugins import _accepted

    offered = {
        "data": ("ctx",), "model": ("ctx", "data"), "train": ("ctx", "data", "model"),
        "export": ("ctx", "data", "model"), "predict": ("ctx", "inputs"), "examples": ("ctx", "data", "n", "split"),
    }  # fmt: skip
    rec = load(name)
    reg = Registry()
    found = {}
    for key in rec.info.table if rec.info else {}:
        fn = reg.stage_function(name, key)
        assert fn is not None
        _accepted(fn, dict.fromkeys(offered[key]), f"{name}: {key}")  # raises PluginError if it wants more
        found[key] = f"{fn.__module__}.{fn.__qualname__}{inspect.signature(fn)}"
    return found


def check_config_defaults(name: str) -> list[dict[str, Any]]:
    """The config instantiates with defaults, round-trips through JSON and documents its keys."""
    info = check_description(name)
    if info.config is None:
        return []
    cfg = info.config()
    again = info.config.model_validate(json.loads(cfg.model_dump_json()))
    assert again == cfg, "config does not round-trip through JSON"
    rows = describe(info.config)
    undocumented = [r["key"] for r in rows if not r["description"]]
    assert not undocumented, f"config keys without a description: {undocumented}"
    return rows


def spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen(cmd)`` whose Ctrl-C (SIGINT) behaves as in a terminal. A shell without
    job control starts background jobs with SIGINT ignored, and children inherit that: then a
    test's ``send_signal(SIGINT)`` would never reach the run. Text mode and pipes by default."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    kwargs.setdefault("text", True)
    return subprocess.Popen(cmd, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 900, cwd: str | os.PathLike | None = None
) -> subprocess.CompletedProcess:
    """Run ``mlx ARGS`` in a subprocess with this interpreter; returns the completed process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mlx_core", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd,
    )


def run_stage(
    name: str, stage: str, runs_dir: Path, overrides: list[str] | tuple[str, ...] = (), *extra: str
) -> Manifest:
    """``mlx run NAME STAGE`` in a subprocess; asserts success and returns the run's manifest.
    The device is ``MLX_TEST_DEVICE`` (nox's ``<plugin>-cuda`` sessions set ``cuda``), else cpu."""
    args = ["run", name, stage, "--runs-dir", str(runs_dir), "--device", os.environ.get("MLX_TEST_DEVICE", "cpu")]
    for o in overrides:
        args += ["--set", o]
    proc = cli(*args, *extra)
    assert proc.returncode == 0, f"mlx {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    manifest = Manifest.load(run_dir)
    for s in STAGES[: STAGES.index(stage) + 1]:
        status = manifest.stage_status(s)
        assert status in ("completed", "skipped"), f"stage {s} is {status}"
    return manifest


def check_answers_only_own_runs(name: str) -> None:
    """Nothing of the plugin answers a run of another plugin: neither the core's stage table
    nor, for plugins written against API 1.0/1.1, its own stage hook functions (their guard)."""
    from .context import RunContext

    rec = load(name)
    reg = Registry(load=False)
    reg.register(rec.module, PluginRecord(name=name, status=OK))
    ctx = RunContext(
        plugin="__another_plugin__", stage="data", target="data", config=None, device="cpu",
        run_dir=Path("/nonexistent"), manifest=None,  # type: ignore[arg-type]
    )  # fmt: skip
    for stage in (*(rec.info.stages if rec.info else ()), "predict"):
        answer = reg.call_stage(stage, ctx=ctx, data=None, model=None, inputs=[])
        assert answer is None, f"mlx_{stage} answered for another plugin's run"


def check_examples_contract(
    name: str, runs_dir: Path, overrides: list[str] | tuple[str, ...] = (), n: int = 2
) -> dict[str, int]:
    """For a plugin that provides ``examples`` (the cross-plugin data contract): run its data
    stage in this process and ask for ``n`` examples of each split through ``ctx.examples``,
    which checks the answer's shape (``mlx_core.contract.check_examples``). Returns the counts."""
    from . import config as cfgmod
    from .context import RunContext
    from .contract import SPLITS
    from .runs import Manifest, new_run_dir

    reg = Registry()
    rec = reg.get(name)
    assert rec.info is not None
    cfg, options = (None, {})
    if rec.info.config is not None:
        cfg, options = cfgmod.resolve(rec.info.config, overrides=list(overrides), options=reg.options_classes())
    run_dir = new_run_dir(Path(runs_dir), name)
    manifest = Manifest.create(run_dir, plugin=name, plugin_version=rec.version, command=None, target="data",
                               versions={}, host={})  # fmt: skip
    ctx = RunContext(plugin=name, stage="data", target="data", config=cfg, device="cpu", run_dir=run_dir,
                     manifest=manifest, option_values=options, registry=reg)  # fmt: skip
    data = reg.call_stage("data", ctx=ctx) if "data" in rec.info.stages else None
    return {split: len(ctx.examples(data, n, split)) for split in SPLITS}


HEAVY_LIBRARIES = ("torch", "torchvision", "torchrec", "fbgemm_gpu", "paddle", "transformers", "datasets",
                   "tensorflow", "jax", "executorch", "onnxruntime", "bitsandbytes", "torchmultimodal")  # fmt: skip
#: tracker libraries: imported only by a run that asks for a tracker (--track, mlx runs sync)
TRACKER_LIBRARIES = ("mlflow", "tensorboard", "tensorboardX", "wandb", "clearml")
HEAVY_LIBRARIES += TRACKER_LIBRARIES

_IMPORTS_SNIPPET = """
import json, sys
from mlx_core.entry import main
sys.argv = ["mlx", *{argv!r}]
try:
    main()
except SystemExit as exc:
    if exc.code not in (None, 0):
        raise
finally:
    print("IMPORTED=" + json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})), file=sys.stderr)
"""


def imported_packages(*argv: str, env: dict[str, str] | None = None) -> list[str]:
    """Top-level packages imported by ``mlx ARGV`` (through the real console-script entry point)
    in a fresh interpreter."""
    code = _IMPORTS_SNIPPET.format(argv=list(argv))
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stderr.splitlines() if x.startswith("IMPORTED="))
    return json.loads(line[len("IMPORTED=") :])


#: a package (not imported by the core alone) whose own import takes this long is heavy
HEAVY_IMPORT_SECONDS = 0.3


def import_seconds(*argv: str, env: dict[str, str] | None = None) -> dict[str, float]:
    """Seconds each top-level package's own modules took to import during ``mlx ARGV`` in a fresh
    interpreter (``python -X importtime``: self times, so a package importing torch is not charged
    for torch)."""
    code = _IMPORTS_SNIPPET.format(argv=list(argv))
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    seconds: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        self_us, _, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if self_us.isdigit():  # skips the header line
            top = name.split(".")[0]
            seconds[top] = seconds.get(top, 0.0) + int(self_us) / 1e6
    return seconds


def heavy_imports(
    *argv: str, env: dict[str, str] | None = None, threshold_s: float = HEAVY_IMPORT_SECONDS
) -> list[str]:
    """Heavy libraries imported by ``mlx ARGV`` in a fresh interpreter, beyond what the core imports
    by itself (the same command with no plugin loaded): a known heavy library (torch, paddle,
    transformers, ...) or any package whose own import took ``threshold_s`` or more, measured
    (``-X importtime``; the slowest packages are measured twice and keep their faster time, so a
    busy machine does not make a light package heavy)."""
    first = import_seconds(*argv, env=env)
    core_alone = set(import_seconds(*argv, env={**(env or {}), "MLX_LOAD_PLUGINS": ""}))
    added = {name: t for name, t in first.items() if name not in core_alone}
    slow = {name for name, t in added.items() if t >= threshold_s and name not in HEAVY_LIBRARIES}
    if slow:
        again = import_seconds(*argv, env=env)
        slow = {name for name in slow if min(added[name], again.get(name, 0.0)) >= threshold_s}
    return sorted(name for name in added if name in HEAVY_LIBRARIES or name in slow)


class PluginConformance:
    """Base class of conformance checks; set ``plugin`` (and ``overrides`` for small runs)."""

    plugin: str = ""
    overrides: list[str] = []
    #: set False for plugins whose data stage needs inputs the defaults cannot provide
    run_data_stage: bool = True

    def test_description(self) -> None:
        check_description(self.plugin)

    def test_config_defaults(self) -> None:
        check_config_defaults(self.plugin)

    def test_answers_only_own_runs(self) -> None:
        check_answers_only_own_runs(self.plugin)

    def test_stage_table_resolves(self) -> None:
        check_stage_table(self.plugin)

    def test_examples_contract(self, tmp_path: Path) -> None:
        rec = load(self.plugin)
        if not rec.provides("examples"):
            pytest.skip("provides no examples (stage table key 'examples')")
        if not self.run_data_stage:
            pytest.skip("data stage needs user inputs")
        counts = check_examples_contract(self.plugin, tmp_path, self.overrides)
        assert all(1 <= c <= 2 for c in counts.values()), counts

    def test_listed_ok(self) -> None:
        proc = cli("plugins", "list", "--json")
        assert proc.returncode == 0, proc.stderr
        rows = {r["name"]: r for r in json.loads(proc.stdout)}
        assert rows[self.plugin]["status"] == "ok", rows[self.plugin]

    def test_listing_imports_no_heavy_library(self) -> None:
        assert heavy_imports("plugins", "list", env={"MLX_LOAD_PLUGINS": self.plugin}) == []

    def test_data_stage_runs(self, tmp_path: Path) -> None:
        if not self.run_data_stage:
            pytest.skip("data stage needs user inputs")
        manifest = run_stage(self.plugin, "data", tmp_path, self.overrides)
        assert manifest.data["plugin"] == self.plugin
        assert manifest.completed("data")


@pytest.fixture
def mlx_registry() -> Registry:
    """A freshly loaded registry of the installed plugins."""
    return Registry()


@pytest.fixture
def mlx_run(tmp_path: Path):
    """``mlx_run(plugin, stage, overrides)`` -> Manifest, runs kept under ``tmp_path``."""

    def _run(name: str, stage: str, overrides: list[str] | tuple[str, ...] = (), *extra: str) -> Manifest:
        return run_stage(name, stage, tmp_path / "runs", overrides, *extra)

    return _run
