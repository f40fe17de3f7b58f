"""``mlx run P STAGE --nproc N --nnodes M``: the stage's workers, started by torch.distributed.run.

The mlx process never imports torch: it checks the request (the plugin's ``distribute``, the
config), agrees on the run directory, and starts ``python -m torch.distributed.run ... -m
mlx_core.worker JOB`` with this interpreter (the plugin's environment). Every worker runs the
same runner (``mlx_core.worker``) with its rank from torchrun's environment (``ctx.dist``);
global rank 0 alone writes ``run.json``, checkpoints and artifacts, every rank writes its output
to ``logs/rank-K.log``. While the job runs this process shows rank 0's log when rank 0 is on
this node; when a worker fails it names the rank and its error in one line.

Timeouts (see docs/scale-out.md): the rendezvous waits ``rdzv_timeout`` seconds (default 300)
for all nodes, a collective ``collective_timeout`` seconds (default 300) for a peer, and torchrun
gives the surviving workers of a failed job ``SHUTDOWN_TIMEOUT_S`` seconds after SIGTERM before
SIGKILL.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .dist import COLLECTIVE_TIMEOUT_ENV, COLLECTIVE_TIMEOUT_S
from .errors import ConfigError, MlxError, RunError, UsageError
from .info import DISTRIBUTE

#: the framework's process-group backend on CPU: what run.json records as the launch's backend
BACKEND = {"torch-ddp": "gloo", "torchrec-dmp": "gloo", "hf-trainer": "gloo", "paddle": "gloo"}
SHUTDOWN_TIMEOUT_S = 10
MONITOR_INTERVAL_S = 0.5
RDZV_TIMEOUT_S = 300.0
LOGS = "logs"


class WorkerFailed(MlxError):
    """A worker of a launched run failed; ``str(err)`` names the rank and its error."""

    exit_code = 1


@dataclass(frozen=True)
class LaunchSpec:
    """The ``--nproc/--nnodes/...`` options, or the ``[launch]`` table of the TOML config."""

    nproc: int = 1
    nnodes: str = "1"
    node_rank: int = 0
    rdzv_endpoint: str = ""
    rdzv_id: str = ""
    max_restarts: int = 0
    rdzv_timeout: float = RDZV_TIMEOUT_S
    collective_timeout: float = COLLECTIVE_TIMEOUT_S
    _given: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def node_range(self) -> tuple[int, int]:
        return parse_nnodes(self.nnodes)

    @property
    def multi_node(self) -> bool:
        return self.node_range[1] > 1

    @property
    def distributed(self) -> bool:
        """Whether this request needs the launcher (more than one process or node, or restarts)."""
        return self.nproc > 1 or self.multi_node or self.max_restarts > 0

    def check(self, where: str = "--") -> None:
        """One-line UsageError for a value out of range (``where``: how to name a key)."""

        def name(key: str) -> str:
            return f"--{key.replace('_', '-')}" if where == "--" else f"{where}{key}"

        if self.nproc < 1:
            raise UsageError(f"{name('nproc')} {self.nproc}: expected a whole number of processes >= 1")
        try:
            lo, hi = self.node_range
        except ValueError:
            raise UsageError(f"{name('nnodes')} {self.nnodes!r}: expected N or MIN:MAX (1 <= MIN <= MAX)") from None
        if self.max_restarts < 0:
            raise UsageError(f"{name('max_restarts')} {self.max_restarts}: expected >= 0")
        if not 0 <= self.node_rank < hi:
            raise UsageError(f"{name('node_rank')} {self.node_rank}: expected 0..{hi - 1} for {hi} node(s)")
        if self.rdzv_endpoint and not _endpoint(self.rdzv_endpoint):
            raise UsageError(f"{name('rdzv_endpoint')} {self.rdzv_endpoint!r}: expected HOST:PORT")
        if self.rdzv_id and not re.fullmatch(r"[A-Za-z0-9][\w.-]*", self.rdzv_id):
            raise UsageError(f"{name('rdzv_id')} {self.rdzv_id!r}: expected letters, digits, '.', '-', '_'")
        for key in ("rdzv_timeout", "collective_timeout"):
            if getattr(self, key) <= 0:
                raise UsageError(f"{name(key)} {getattr(self, key)}: expected seconds > 0")
        if hi > 1 and not (self.rdzv_endpoint and self.rdzv_id):
            raise UsageError(
                f"{name('nnodes')} {self.nnodes}: several nodes need {name('rdzv_endpoint')} HOST:PORT "
                f"and {name('rdzv_id')} ID, the same on every node"
            )

    def record(self, backend: str) -> dict[str, Any]:
        """What ``run.json`` records under ``launch`` (the world size is added by rank 0)."""
        lo, hi = self.node_range
        return {
            "nproc": self.nproc, "nnodes": self.nnodes, "min_nodes": lo, "max_nodes": hi,
            "backend": backend, "rdzv_backend": "c10d", "rdzv_endpoint": self.rdzv_endpoint,
            "rdzv_id": self.rdzv_id, "max_restarts": self.max_restarts,
            "rdzv_timeout_s": self.rdzv_timeout, "collective_timeout_s": self.collective_timeout,
        }  # fmt: skip


def parse_nnodes(text: str) -> tuple[int, int]:
    """torchrun's ``--nnodes``: ``N`` or ``MIN:MAX``; ValueError otherwise."""
    lo, _, hi = str(text).partition(":")
    a, b = int(lo), int(hi or lo)
    if a < 1 or b < a:
        raise ValueError(text)
    return a, b


def _endpoint(text: str) -> bool:
    host, sep, port = text.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536)


_KEYS = {f.name: f.type for f in fields(LaunchSpec) if not f.name.startswith("_")}


def from_table(table: Any, source: str) -> dict[str, Any]:
    """The ``[launch]`` table of a TOML config as LaunchSpec keyword arguments (one-line errors)."""
    if not isinstance(table, dict):
        raise ConfigError(f"[launch] in {source} must be a table of launch options, got {table!r}")
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _KEYS:
            raise ConfigError(f"[launch] in {source}: unknown key {key!r}; expected one of {', '.join(_KEYS)}")
        kind = _KEYS[key]
        ok = (
            (kind == "int" and isinstance(value, int) and not isinstance(value, bool))
            or (kind == "float" and isinstance(value, int | float) and not isinstance(value, bool))
            or (kind == "str" and isinstance(value, str | int) and not isinstance(value, bool))
        )
        if not ok:
            raise ConfigError(
                f"[launch] in {source}: {key} = {value!r}; expected {'a number' if kind != 'str' else 'a string'}"
            )
        out[key] = str(value) if kind == "str" else value
    return out


def spec_for(config_file: str | os.PathLike | None, given: dict[str, Any]) -> LaunchSpec:
    """The launch of a run: defaults <- the config's ``[launch]`` table <- the command-line options
    actually given (``given`` holds only those)."""
    from .config import load_toml

    table: dict[str, Any] = {}
    if config_file is not None:
        loaded = load_toml(config_file)
        if "launch" in loaded:
            table = from_table(loaded["launch"], f"config file {config_file}")
    spec = LaunchSpec(**{**table, **given}, _given=tuple(given))
    spec.check("--")
    return spec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_command(spec: LaunchSpec, job: dict[str, Any], python: str = sys.executable) -> list[str]:
    """``python -m torch.distributed.run ... -m mlx_core.worker JOB``: every worker runs the
    runner with the job (plugin, stage, config, agreed run directory) as one JSON argument."""
    endpoint = spec.rdzv_endpoint or f"127.0.0.1:{free_port()}"
    rdzv_id = spec.rdzv_id or Path(job["run_dir"]).name
    # Python's output unbuffered: rank logs are whole up to the instant a worker dies
    return [
        python, "-m", "torch.distributed.run",
        f"--nnodes={spec.nnodes}", f"--nproc-per-node={spec.nproc}", f"--node-rank={spec.node_rank}",
        "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", f"--rdzv-id={rdzv_id}",
        f"--rdzv-conf=join_timeout={int(spec.rdzv_timeout)}",
        f"--max-restarts={spec.max_restarts}", f"--monitor-interval={MONITOR_INTERVAL_S}",
        f"--shutdown-timeout={SHUTDOWN_TIMEOUT_S}", "--role=mlx",
        "-m", "mlx_core.worker", json.dumps(job, separators=(",", ":")),
    ]  # fmt: skip


def check_distributes(plugin: str, distribute: str, spec: LaunchSpec) -> None:
    if spec.distributed and distribute == "none":
        asked = f"--nproc {spec.nproc}" if spec.nproc > 1 else f"--nnodes {spec.nnodes}"
        if spec.nproc == 1 and not spec.multi_node:
            asked = f"--max-restarts {spec.max_restarts}"
        raise UsageError(
            f"plugin {plugin!r} does not distribute (its PluginInfo.distribute is 'none'): {asked} needs "
            f"one of {', '.join(d for d in DISTRIBUTE if d != 'none')}; run it as one process"
        )


def launch_run_dir(runs_dir: Path, plugin: str, spec: LaunchSpec, from_dir: Path | None) -> Path:
    """The run directory every node agrees on without sharing a filesystem: ``--from``'s, else
    ``RUNS/PLUGIN/RDZV_ID`` when an id is given (every node derives the same name), else a new one."""
    from .runs import MANIFEST, new_run_dir

    if from_dir is not None:
        return Path(from_dir).resolve()
    if spec.rdzv_id:
        run_dir = Path(runs_dir) / plugin / spec.rdzv_id
        if (run_dir / MANIFEST).exists():
            raise RunError(
                f"run directory {run_dir} (from --rdzv-id {spec.rdzv_id}) already holds a run; "
                "continue it with --from or choose another --rdzv-id"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir.resolve()
    return new_run_dir(Path(runs_dir), plugin).resolve()


def _die_with_parent() -> None:
    """In the torchrun child, before it starts (Linux): SIGTERM when the launcher dies, even by
    SIGKILL (a harness's timeout, the OOM killer), so torchrun stops its workers instead of
    training on as orphans. Elsewhere nothing: Ctrl-C and SIGTERM are forwarded by launch()."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def launch(job: dict[str, Any], spec: LaunchSpec, console: Any) -> subprocess.CompletedProcess | None:
    """Run torchrun for ``job`` and wait; shows rank 0's log while it runs (when rank 0 is on this
    node). Raises WorkerFailed naming the failed rank; returns None on success."""
    run_dir = Path(job["run_dir"])
    logs = run_dir / LOGS
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.glob("rank-*.error.json"):  # an earlier invocation's (--from)
        old.unlink()
    env = {**os.environ, COLLECTIVE_TIMEOUT_ENV: str(spec.collective_timeout), "PYTHONUNBUFFERED": "1"}
    # torchrun shares its rendezvous TCPStore with the workers' process group by default; after a
    # --max-restarts restart the new group then finds the keys of the failed attempt and every
    # rank waits in init_process_group (seen with gloo: both ranks idle for minutes; pytorch
    # issue 135712). A store of the group's own per attempt avoids that.
    env.setdefault("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "1")
    # torchrun would set 1 and warn about it: the plugin chooses its own threads per process
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // spec.nproc)))
    cmd = torchrun_command(spec, job)
    launcher_log = logs / f"launcher.node{spec.node_rank}.log"
    with open(launcher_log, "ab") as out:
        out.write(f"$ {' '.join(cmd[:-1])} JOB\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)
        try:
            _follow(proc, logs / "rank-0.log", console)
        except BaseException:  # Ctrl-C / SIGTERM of this process: torchrun forwards it to its workers
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(SHUTDOWN_TIMEOUT_S + 10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            raise
    if proc.returncode != 0:
        raise failure(run_dir, launcher_log, proc.returncode)
    return None


def _follow(proc: subprocess.Popen, log: Path, console: Any) -> None:
    """Wait for ``proc``, printing what rank 0 writes to its log as it comes."""
    pos = 0
    while True:
        done = proc.poll() is not None
        if log.exists():
            with open(log, "rb") as f:
                f.seek(pos)
                chunk = f.read()
            # whole lines only (the rest comes next time), unless the job is over
            cut = len(chunk) if done else chunk.rfind(b"\n") + 1
            if cut:
                sys.stderr.write(chunk[:cut].decode(errors="replace"))
                sys.stderr.flush()
                pos += cut
        if done:
            return
        time.sleep(0.2)


_SUMMARY = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank:\s*\d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)")


def failure(run_dir: Path, launcher_log: Path, code: int) -> MlxError:
    """The error of a failed job as one line. A rank killed by a signal other than SIGTERM
    (SIGKILL, SIGSEGV: it could say nothing) is a cause, never a consequence, so it comes first;
    else the first rank that reported an error (its ``logs/rank-K.error.json``: the peers of a
    failed rank report later, or were stopped with SIGTERM); else torchrun's last line."""
    text = launcher_log.read_text(errors="replace") if launcher_log.exists() else ""
    errors = []
    for path in (run_dir / LOGS).glob("rank-*.error.json"):
        try:
            errors.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    reported = {int(e.get("rank", -1)) for e in errors}
    for rank, exitcode in _SUMMARY.findall(text):
        sig = -int(exitcode)
        if sig > 0 and sig != signal.SIGTERM and int(rank) not in reported:
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else ""
            how = f"killed by signal {sig}{f' ({name})' if name else ''}"
            return _mark_failed(run_dir, WorkerFailed(f"rank {rank} died ({how}); logs in {run_dir / LOGS}"))
    own = [e for e in errors if e.get("type") not in ("Terminated", "KeyboardInterrupt")] or errors
    if own:
        first = min(own, key=lambda e: (e.get("time", 0), e.get("rank", 0)))
        message = first["message"] if first.get("user_error") else f"{first['type']}: {first['message']}"
        err = WorkerFailed(f"rank {first['rank']} failed: {message} (logs in {run_dir / LOGS})")
        err.exit_code = int(first.get("exit_code", 1)) if first.get("user_error") else 1
        return _mark_failed(run_dir, err)
    found = _SUMMARY.findall(text.rpartition("Root Cause")[2])
    if found:
        rank, exitcode = found[0]
        return _mark_failed(
            run_dir, WorkerFailed(f"rank {rank} failed (exit code {exitcode}); logs in {run_dir / LOGS}")
        )
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    last = lines[-1] if lines else f"exit code {code}"
    return _mark_failed(run_dir, WorkerFailed(f"the launched job failed: {last[:300]} (see {launcher_log})"))


def _mark_failed(run_dir: Path, err: MlxError) -> MlxError:
    """Rank 0 was stopped from outside (SIGTERM/SIGKILL by torchrun): its run.json, when this
    node holds it, gets the job's status and error. The workers are gone, so the lock is free."""
    from .runs import MANIFEST, Manifest, run_lock

    if not (run_dir / MANIFEST).exists():
        return err
    try:
        with run_lock(run_dir):
            manifest = Manifest.load(run_dir)
            manifest.data["status"] = "failed"
            manifest.data.setdefault("launch", {})["error"] = str(err)
            manifest.save()
    except MlxError:
        pass  # another run took the directory: leave its manifest alone
    return err


def describe(spec: LaunchSpec) -> str:
    lo, hi = spec.node_range
    nodes = f"{lo}" if lo == hi else f"{lo}..{hi}"
    return f"{spec.nproc} process(es) per node on {nodes} node(s)"


def run_launched(
    registry: Any,
    plugin: str,
    stage: str,
    spec: LaunchSpec,
    *,
    config_file: str | os.PathLike | None,
    overrides: list[str],
    device: str,
    runs_dir: Path,
    from_dir: Path | None,
    profile: bool,
    track: list[str],
    command: list[str],
    console: Any,
) -> Path:
    """``mlx run`` with the launcher: everything a run checks is checked here, before any worker
    starts (one line, exit 2); then torchrun runs the workers. Returns this node's run directory
    (with ``run.json`` when global rank 0 ran on this node, else only ``logs/``)."""
    from .runner import prepare

    rec = registry.get(plugin)
    assert rec.info is not None
    check_distributes(plugin, rec.info.distribute, spec)
    prepare(registry, plugin, stage, config_file=config_file, overrides=overrides, device=device, from_dir=from_dir)
    run_dir = launch_run_dir(runs_dir, plugin, spec, from_dir)
    # one node: a c10d store on a free loopback port, the run's name as the job id
    spec = replace(
        spec, rdzv_endpoint=spec.rdzv_endpoint or f"127.0.0.1:{free_port()}", rdzv_id=spec.rdzv_id or run_dir.name
    )
    record = spec.record(BACKEND.get(rec.info.distribute, "gloo"))
    job = {
        "plugin": plugin, "stage": stage, "config_file": str(config_file) if config_file else None,
        "overrides": list(overrides), "device": device, "run_dir": str(run_dir),
        "from_dir": str(from_dir) if from_dir else None, "profile": profile, "track": list(track),
        "command": command, "launch": record,
    }  # fmt: skip
    console.print(f"launch {run_dir}: {describe(spec)} (torch.distributed.run)", highlight=False, soft_wrap=True)
    launch(job, spec, console)
    return run_dir
