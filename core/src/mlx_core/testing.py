"""Conformance kit for plugin authors: reuse it in your plugin's own tests.

Subclass ``PluginConformance`` and name your plugin; pytest collects the checks::

    from mlx_core.testing import PluginConformance

    class TestConformance(PluginConformance):
        plugin = "myplugin"
        overrides = ["data.size=16"]     # keep the data-stage run small

Or call the functions directly (``check_description``, ``run_stage``). The plugin must be
*installed* (its entry point in the ``mlx`` group), exactly as users will have it. Installed as
a pytest plugin (entry point ``pytest11``), this module also provides the fixtures
``mlx_registry`` and ``mlx_run`` and registers the hypothesis settings profile ``mlx``.

The test harness every tests folder shares (no folder keeps its own copy):

- ``sets(*overrides)`` -> ``["--set", o, ...]``; ``device_under_test()`` -> ``$MLX_TEST_DEVICE`` or cpu;
- ``stage_process(plugin, stage, runs_dir, overrides)`` -> the finished ``mlx run`` subprocess,
  ``run_dir_of(proc)`` -> its run directory (asserting success), ``run_stage(...)`` -> its manifest;
- ``one_line_error(proc)``: the judge of a user error of the CLI (exit 2, one ``error:`` line, no
  traceback); ``assert_one_line_error(exc)``: the same judge for a raised exception;
- ``stage_context(run_dir, ...)``: a real ``RunContext`` with a manifest, for calling a stage
  function in process;
- the hypothesis profile ``mlx`` (no deadline, no example database, no health check against
  function-scoped fixtures or slow data), loaded with ``--hypothesis-profile=mlx``.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .config import describe
from .errors import ConfigError, DataError
from .info import STAGES, PluginInfo
from .libraries import HEAVY_MODULES
from .plugins import OK, PluginRecord, Registry
from .runs import Manifest

if TYPE_CHECKING:
    from .context import RunContext


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

    from . import hookspecs
    from .plugins import _accepted

    rec = load(name)
    reg = Registry()
    found = {}
    for key in rec.info.table if rec.info else {}:
        fn = reg.stage_function(name, key)
        assert fn is not None
        offered = inspect.signature(getattr(hookspecs, f"mlx_{key}")).parameters  # what the hook passes
        _accepted(fn, dict.fromkeys(offered), f"{name}: {key}")  # raises PluginError if it wants more
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


def sets(*overrides: str) -> list[str]:
    """``["--set", o1, "--set", o2, ...]``: config overrides as ``mlx run`` arguments."""
    return [arg for o in overrides for arg in ("--set", o)]


def device_under_test() -> str:
    """The device a plugin's tests run on: ``$MLX_TEST_DEVICE`` (nox's ``<plugin>-cuda`` sessions
    set ``cuda``), else ``cpu``."""
    return os.environ.get("MLX_TEST_DEVICE") or "cpu"


def stage_process(
    name: str,
    stage: str,
    runs_dir: str | os.PathLike,
    overrides: list[str] | tuple[str, ...] = (),
    *extra: str,
    device: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess:
    """``mlx run NAME STAGE --runs-dir RUNS_DIR --device DEVICE --set ... EXTRA`` in a subprocess,
    finished; nothing asserted (a test of bad input judges it with ``one_line_error``).
    ``device`` defaults to ``device_under_test()``."""
    args = ["run", name, stage, "--runs-dir", str(runs_dir), "--device", device or device_under_test()]
    return cli(*args, *sets(*overrides), *extra, env=env, timeout=timeout)


def run_dir_of(proc: subprocess.CompletedProcess) -> Path:
    """The run directory a successful ``mlx run`` printed as its last stdout line (asserting exit 0)."""
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stderr[-4000:]}"
    return Path(proc.stdout.strip().splitlines()[-1])


def run_stage(
    name: str, stage: str, runs_dir: Path, overrides: list[str] | tuple[str, ...] = (), *extra: str
) -> Manifest:
    """``mlx run NAME STAGE`` in a subprocess; asserts success (every stage up to STAGE completed
    or skipped) and returns the run's manifest. The device is ``device_under_test()``
    (``$MLX_TEST_DEVICE``: nox's ``<plugin>-cuda`` sessions set ``cuda``), else cpu."""
    proc = stage_process(name, stage, runs_dir, overrides, *extra)
    assert proc.returncode == 0, f"mlx run {name} {stage} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    manifest = Manifest.load(run_dir_of(proc))
    for s in STAGES[: STAGES.index(stage) + 1]:
        status = manifest.stage_status(s)
        assert status in ("completed", "skipped"), f"stage {s} is {status}"
    return manifest


def run_in_process(
    registry: Registry,
    name: str,
    stage: str,
    runs_dir: str | os.PathLike,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    device: str = "cpu",
    **options: Any,
) -> Manifest:
    """``runner.run`` of plugin NAME up to STAGE in this process, with ``registry`` (e.g. plugins
    registered by hand), its log kept in a buffer; returns the final manifest. ``options`` go to
    ``runner.run`` (``from_dir``, ``observers``, ...)."""
    from rich.console import Console

    from . import runner

    console = Console(file=io.StringIO(), stderr=False)
    return runner.run(registry, name, stage, overrides=overrides, runs_dir=runs_dir, device=device, console=console,
                      **options)  # fmt: skip


# --- judging user errors ---------------------------------------------------------------------------
def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def assert_one_line_error(
    err: BaseException,
    *names: object,
    types: type[BaseException] | tuple[type[BaseException], ...] = (DataError, ConfigError),
) -> str:
    """Assert ``err`` is a user error: an instance of ``types`` (anything else escaped the reader),
    whose message is one non-blank line (no line break of any kind) printable as UTF-8 (no lone
    surrogate copied from the data) and names each of ``names`` (compared as ``str``). Returns the message.
    (Also exported by ``mlx_core.hostile``.)"""
    msg = str(err)
    assert isinstance(err, types), f"{type(err).__name__} escaped: {_short(msg)}"
    _assert_one_line(msg, names)
    return msg


def _assert_one_line(msg: str, names: tuple[object, ...]) -> None:
    one_line = msg.strip() and len(msg.splitlines()) == 1 and "\n" not in msg and "\r" not in msg
    assert one_line, f"message is not one line: {_short(repr(msg))}"
    try:
        msg.encode("utf-8")
    except UnicodeEncodeError:
        raise AssertionError(f"message is not printable as UTF-8 (a lone surrogate): {_short(repr(msg))}") from None
    for name in names:
        assert str(name) in msg, f"{name!s} not named in: {_short(msg)}"


def one_line_error(proc: subprocess.CompletedProcess, *names: object, during_run: bool = False) -> str:
    """Assert the CLI process failed as a user error and return its ``error: ...`` line: exit code 2,
    no traceback, exactly one ``error: `` line, the last line on stderr, one line that names each of
    ``names``. Errors found before a run starts are the only line on stderr; errors raised inside a
    stage (``during_run``) come after the run's log lines (its banner, a stage's progress)."""
    tail = proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, f"exit {proc.returncode}, expected 2:\n{tail}"
    assert "Traceback" not in proc.stderr, tail
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], f"expected one error line, the last:\n{tail}"
    if not during_run:
        assert len(lines) == 1, f"expected the error line alone:\n{tail}"
    _assert_one_line(errors[0], names)
    return errors[0]


# --- in-process stage calls ------------------------------------------------------------------------
def stage_context(
    run_dir: str | os.PathLike,
    plugin: str = "test",
    config: Any = None,
    stage: str = "data",
    *,
    target: str | None = None,
    device: str = "cpu",
    quiet: bool = True,
    **fields: Any,
) -> RunContext:
    """A real ``RunContext`` for calling a stage function in process: ``run_dir`` is created, with a
    fresh manifest (``run.json``) for ``plugin``; ``quiet`` sends ``ctx.log`` to a buffer (read it
    as ``ctx.console.file.getvalue()``). ``fields`` set the other context fields (``resumed``,
    ``option_values``, ...)."""
    from rich.console import Console

    from .context import RunContext

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if quiet:
        fields.setdefault("console", Console(file=io.StringIO(), width=200))
    return RunContext(
        plugin=plugin, stage=stage, target=target or stage, config=config, device=device, run_dir=run_dir,
        manifest=Manifest.create(run_dir, plugin=plugin), **fields,
    )  # fmt: skip


# --- hypothesis ------------------------------------------------------------------------------------
#: the settings every property test of the project shares (``--hypothesis-profile=mlx``): no
#: deadline (a shared CI machine is slow at random moments: no timing-dependent tests), no example
#: database (nothing written outside temporary folders), and no health check against the
#: function-scoped fixtures and slow strategies the reader tests use on purpose
HYPOTHESIS_PROFILE = "mlx"


def register_hypothesis_profile() -> bool:
    """Register the ``mlx`` hypothesis profile; False when hypothesis is not installed."""
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:  # mlx-core[test] not installed: nothing to register
        return False
    settings.register_profile(
        HYPOTHESIS_PROFILE,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    return True


# registered when pytest loads this module as a plugin (entry point pytest11), before hypothesis's own
# pytest plugin reads --hypothesis-profile in pytest_configure
register_hypothesis_profile()


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


#: libraries ``mlx plugins list`` must never import (the table in mlx_core.libraries)
HEAVY_LIBRARIES = HEAVY_MODULES
#: tracker libraries: imported only by a run that asks for a tracker (--track, mlx runs sync); heavy rows of the table
TRACKER_LIBRARIES = ("mlflow", "tensorboard", "tensorboardX", "wandb", "clearml")

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
    for torch). The plugin cache is off: this measures what loading the plugins imports."""
    code = _IMPORTS_SNIPPET.format(argv=list(argv))
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {}), "MLX_PLUGIN_CACHE": "0"},
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
