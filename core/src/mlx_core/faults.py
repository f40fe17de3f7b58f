"""Test-only fault injection: a process kills itself (SIGKILL), or raises, at a named instant.

Resume tests must hit the instant they mean (a checkpoint written, its epoch's row not yet in
``run.json``), not race a kill against the clock. A plugin marks such instants with
``kill_point("recsys:before_checkpoint:2")``; a test sets ``MLX_TEST_SIGKILL`` to the same
string and the process dies exactly there, as under a real ``kill -9``; ``MLX_TEST_RAISE``
makes it raise ``RuntimeError`` there instead (a rank that fails). In a launched run
(``mlx run --nproc N``) ``MLX_TEST_FAULT_RANK=K`` limits either to global rank K. Unset
(always, outside tests), a kill point costs two environment lookups. Not for users.
"""

from __future__ import annotations

import os
import signal

ENV = "MLX_TEST_SIGKILL"
RAISE_ENV = "MLX_TEST_RAISE"
RANK_ENV = "MLX_TEST_FAULT_RANK"


def _this_rank() -> bool:
    wanted = os.environ.get(RANK_ENV, "").strip()
    return not wanted or wanted == os.environ.get("RANK", "0").strip()


def kill_point(name: str) -> None:
    """SIGKILL this process when ``MLX_TEST_SIGKILL`` equals ``name`` (``plugin:point:epoch``);
    raise RuntimeError when ``MLX_TEST_RAISE`` does; only on rank ``MLX_TEST_FAULT_RANK`` if set."""
    if os.environ.get(ENV) == name and _this_rank():
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(RAISE_ENV) == name and _this_rank():
        raise RuntimeError(f"test fault at {name}")
