"""segmentation under the core launcher when things go wrong (issue 15): a rank that raises, a
worker killed then resumed with one process, an elastic restart (``--max-restarts``), and two
nodes on loopback. The scenarios are mlx_core.testing_launch's, shared by every plugin that distributes; the
faults are deterministic (mlx_core.faults at the engine's ``segmentation:epoch_end:E``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlx_core.testing_launch import (
    assert_a_killed_worker_resumes_with_one_process,
    assert_a_raising_rank_ends_the_job,
    assert_an_elastic_restart_continues_the_run,
    assert_two_nodes_on_loopback_form_one_job,
)

from .seg_helpers import TINY, sets

pytestmark = pytest.mark.slow


def test_a_raising_rank_ends_the_job_in_one_line(tmp_path):
    assert_a_raising_rank_ends_the_job("segmentation", tmp_path, TINY)


def test_a_killed_worker_resumes_with_one_process(tmp_path):
    assert_a_killed_worker_resumes_with_one_process("segmentation", tmp_path, TINY)


def test_an_elastic_restart_continues_the_run(tmp_path):
    assert_an_elastic_restart_continues_the_run("segmentation", tmp_path, TINY)


def test_two_nodes_on_loopback_form_one_job(tmp_path):
    assert_two_nodes_on_loopback_form_one_job("segmentation", tmp_path, TINY)


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and proc.name != str(os.getpid()):
            try:
                if text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(proc.name))
            except OSError:
                pass  # ended meanwhile
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_killed_launcher_takes_torchrun_and_its_workers_with_it(tmp_path):
    """SIGKILL of `mlx run --nproc 2` itself (a harness's timeout, the OOM killer) while both
    workers wait at a known instant: torchrun gets SIGTERM from the kernel and stops them; no
    orphan trains on."""
    release = tmp_path / "release"
    env = {**os.environ, "MLX_TEST_HOLD": f"segmentation:epoch_end:1={release}"}
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "mlx_core", "run", "segmentation", "train", "--runs-dir", str(runs),
                             "--device", "cpu", *sets(*TINY), "--nproc", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    held = Path(f"{release}.held")
    deadline = time.monotonic() + 600
    while not held.exists():  # the workers reached the hold point (an event, not a clock)
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before the hold point"
        time.sleep(0.2)
    assert len(_processes_mentioning(str(runs))) >= 3  # torchrun and its two workers
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 120  # torchrun's shutdown timeout is 10 s
    while _processes_mentioning(str(runs)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_mentioning(str(runs)) == []
