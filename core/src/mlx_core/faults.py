"""Test-only fault injection: a process kills itself (SIGKILL), raises, or waits, at a named instant.

Resume tests must hit the instant they mean (a checkpoint written, its epoch's row not yet in
``run.json``), not race a kill against the clock. A plugin marks such instants with
``kill_point("recsys:before_checkpoint:2")``; a test sets ``MLX_TEST_SIGKILL`` to the same
string and the process dies exactly there, as under a real ``kill -9``; ``MLX_TEST_RAISE``
makes it raise ``RuntimeError`` there instead (a rank that fails). In a launched run
(``mlx run --nproc N``) ``MLX_TEST_FAULT_RANK=K`` limits either to global rank K, and
``MLX_TEST_FAULT_ATTEMPT=A`` to the elastic attempt A (torchrun's ``TORCHELASTIC_RESTART_COUNT``:
0 before any ``--max-restarts`` restart), so a restarted worker group gets past the fault. Unset
(always, outside tests), a kill point costs two environment lookups. Not for users.
"""

from __future__ import annotations

import os
import signal

ENV = "MLX_TEST_SIGKILL"
RAISE_ENV = "MLX_TEST_RAISE"
RANK_ENV = "MLX_TEST_FAULT_RANK"
ATTEMPT_ENV = "MLX_TEST_FAULT_ATTEMPT"


def _this_rank() -> bool:
    wanted = os.environ.get(RANK_ENV, "").strip()
    attempt = os.environ.get(ATTEMPT_ENV, "").strip()
    if attempt and attempt != (os.environ.get("TORCHELASTIC_RESTART_COUNT", "0").strip() or "0"):
        return False
    return not wanted or wanted == os.environ.get("RANK", "0").strip()


def kill_point(name: str) -> None:
    """SIGKILL this process when ``MLX_TEST_SIGKILL`` equals ``name`` (``plugin:point:epoch``);
    raise RuntimeError when ``MLX_TEST_RAISE`` does; only on rank ``MLX_TEST_FAULT_RANK`` if set."""
    if os.environ.get(ENV) == name and _this_rank():
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(RAISE_ENV) == name and _this_rank():
        raise RuntimeError(f"test fault at {name}")


HOLD_ENV = "MLX_TEST_HOLD"


def hold_point(name: str) -> None:
    """Wait at a named instant until the test releases it: ``MLX_TEST_HOLD=name=PATH`` makes the
    process create ``PATH.held`` (the test's sign that it got there) and wait until ``PATH``
    exists. Lets a test act (send SIGTERM) while a request is surely in flight, without sleeps."""
    raw = os.environ.get(HOLD_ENV, "")
    point, _, path = raw.partition("=")
    if point != name or not path:
        return
    import time
    from pathlib import Path

    Path(path + ".held").touch()
    while not Path(path).exists():
        time.sleep(0.01)  # polls a file the test writes; the test never waits on this clock
