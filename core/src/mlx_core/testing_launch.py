"""Test kit of the launcher (``mlx run P STAGE --nproc N``): the fault scenarios every plugin that
distributes must survive, asserted in one place so each plugin's tests check the same behaviour.

Each helper runs ``mlx run PLUGIN train`` in subprocesses under a tiny config (``overrides``: at
least 2 epochs' worth of data) and asserts; the faults are deterministic (mlx_core.faults: a
named instant, a rank, an elastic attempt), never a kill racing the clock. The fault point is
``PLUGIN:epoch_end:E`` by default (mlx-torch's engine reaches it on every rank before the
epoch's collectives); a plugin with its own points passes ``point``. Torch-free, like the core:
the plugins' own frameworks run in the subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .launch import free_port
from .testing import sets, stage_process


def _only_run_dir(runs: Path, plugin: str) -> Path:
    (run_dir,) = (runs / plugin).iterdir()
    return run_dir


def _env(**faults: str) -> dict[str, str]:
    return {**os.environ, **faults}


def assert_a_raising_rank_ends_the_job(
    plugin: str, runs: Path, overrides: list[str], device: str = "cpu", point: str | None = None
) -> None:
    """Rank 1 raises in epoch 1: the whole job ends (no hang) within 60 s of the raise, with one
    ``error:`` line naming the rank and its error, exit 1, no traceback; run.json says failed."""
    point = point or f"{plugin}:epoch_end:1"
    env = _env(MLX_TEST_RAISE=point, MLX_TEST_FAULT_RANK="1")
    proc = stage_process(plugin, "train", runs, overrides, "--nproc", "2", device=device, env=env, timeout=300)
    ended = time.time()
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert errors == [lines[-1]] and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"rank 1 failed: RuntimeError: test fault at {point}" in errors[0]
    run_dir = _only_run_dir(runs, plugin)
    raised = json.loads((run_dir / "logs" / "rank-1.error.json").read_text())
    assert ended - raised["time"] < 60  # from the raise to the end of every process
    m = json.loads((run_dir / "run.json").read_text())
    assert m["status"] == "failed" and "rank 1" in m["launch"]["error"]


def assert_a_killed_worker_resumes_with_one_process(
    plugin: str, runs: Path, overrides: list[str], device: str = "cpu"
) -> None:
    """Rank 1 is SIGKILLed in epoch 2 of a 2-process run: the job ends naming it; ``--from`` with
    one process continues from the epoch-1 checkpoint and finishes both epochs."""
    env = _env(MLX_TEST_SIGKILL=f"{plugin}:epoch_end:2", MLX_TEST_FAULT_RANK="1")
    args = [*overrides, "train.epochs=2"]
    proc = stage_process(plugin, "train", runs, args, "--nproc", "2", device=device, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "rank 1 died (killed by signal 9 (SIGKILL))" in proc.stderr.splitlines()[-1], proc.stderr[-3000:]
    run_dir = _only_run_dir(runs, plugin)
    resumed = stage_process(plugin, "train", runs, (), "--from", str(run_dir), device=device, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    m = json.loads((run_dir / "run.json").read_text())
    train = m["stages"]["train"]
    assert train["status"] == "completed" and [h["step"] for h in train["history"]] == [0, 1, 2]
    assert m["records"]["resumed_from_epoch"] == 1 and m["records"]["engine"]["world_size"] == 1


def assert_an_elastic_restart_continues_the_run(
    plugin: str, runs: Path, overrides: list[str], device: str = "cpu"
) -> None:
    """``--max-restarts 1``: rank 1 is SIGKILLed in epoch 2 of the first attempt only; torchrun
    restarts the worker group, which continues from the epoch-1 checkpoint (the worker resumes
    its own run directory) and finishes, exit 0, with every epoch logged once."""
    env = _env(MLX_TEST_SIGKILL=f"{plugin}:epoch_end:2", MLX_TEST_FAULT_RANK="1", MLX_TEST_FAULT_ATTEMPT="0")
    args = [*overrides, "train.epochs=2"]
    proc = stage_process(plugin, "train", runs, args, "--nproc", "2", "--max-restarts", "1", device=device,
                         env=env, timeout=400)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = _only_run_dir(runs, plugin)
    m = json.loads((run_dir / "run.json").read_text())
    train = m["stages"]["train"]
    assert train["status"] == "completed" and [h["step"] for h in train["history"]] == [0, 1, 2]
    assert m["records"]["resumed_from_epoch"] == 1 and m["records"]["engine"]["world_size"] == 2
    assert "attempt 1" in (run_dir / "logs" / "rank-1.log").read_text()


def assert_two_nodes_on_loopback_form_one_job(
    plugin: str, runs: Path, overrides: list[str], device: str = "cpu", checkpoints: str = "checkpoints/*.pt"
) -> None:
    """Two `mlx run` processes as two machines would run them (``--nnodes 2``, node ranks 0 and
    1, one c10d endpoint on 127.0.0.1, no shared runs folder): one job of world size 2; the node
    that drew global rank 0 keeps run.json and the checkpoints (``checkpoints``, a glob in the run
    directory), the other only its log. Not engine-specific: any plugin that records
    ``launch.ranks`` with a ``weights_sha256`` can use it."""
    port = free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlx_core",
                "run",
                plugin,
                "train",
                "--runs-dir",
                str(runs / f"node{k}"),
                "--device",
                device,
                *sets(*overrides),
                "--nnodes",
                "2",
                "--node-rank",
                str(k),
                "--nproc",
                "1",
                "--rdzv-endpoint",
                f"127.0.0.1:{port}",
                "--rdzv-id",
                "loop",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for k in (0, 1)
    ]
    outs = [p.communicate(timeout=400) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    dirs = [runs / f"node{k}" / plugin / "loop" for k in (0, 1)]
    main = [d for d in dirs if (d / "run.json").exists()]
    assert len(main) == 1, dirs
    (other,) = set(dirs) - set(main)
    m = json.loads((main[0] / "run.json").read_text())
    assert (m["launch"]["world_size"], m["launch"]["nnodes"], m["launch"]["rdzv_id"]) == (2, "2", "loop")
    assert m["stages"]["train"]["status"] == "completed" and list(main[0].glob(checkpoints))
    assert not list(other.glob(checkpoints))
    assert len(list(other.glob("logs/rank-*.log"))) == 1 and len(list(main[0].glob("logs/rank-*.log"))) == 1
    ranks = m["launch"]["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1] and len({r["weights_sha256"] for r in ranks}) == 1
