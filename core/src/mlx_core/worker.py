"""One worker of a launched run: ``python -m mlx_core.worker JOB`` (started by torch.distributed.run).

JOB is the JSON the launcher built (plugin, stage, config file, overrides, device, the run
directory every rank agreed on, what run.json records of the launch). The worker sends its
stdout and stderr to ``RUN_DIR/logs/rank-K.log`` (K: its global rank), runs the same runner as
``mlx run`` with its rank from torchrun's environment, and, when it fails, leaves
``logs/rank-K.error.json`` (rank, error type, one-line message, time) for the launcher to name
in its one line. After an elastic restart (``--max-restarts``) it continues the run like ``--from``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from .errors import MlxError, Terminated
from .runs import MANIFEST, atomic_write_json


def _terminate(signum: int, frame: object) -> None:
    # once: torchrun's next SIGTERM (or one during interpreter exit) then simply ends the process
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated("terminated (SIGTERM)")


def redirect_output(log: Path) -> None:
    """This process's fds 1 and 2 (Python's and any library's output) go to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job: dict[str, Any] = json.loads(argv[0])
    rank = int(os.environ.get("RANK", "0"))
    run_dir = Path(job["run_dir"])
    redirect_output(run_dir / "logs" / f"rank-{rank}.log")
    signal.signal(signal.SIGTERM, _terminate)  # torchrun stops the survivors of a failed job so
    restarts = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)
    from_dir = job.get("from_dir")
    if restarts and (run_dir / MANIFEST).exists():
        from_dir = str(run_dir)  # an elastic restart continues from the last checkpoint
    print(f"[mlx worker] rank {rank} of {os.environ.get('WORLD_SIZE', '1')}, attempt {restarts}", flush=True)
    try:
        from .plugins import Registry
        from .runner import run
        from .tracking import observers

        registry = Registry()
        run(
            registry, job["plugin"], job["stage"], config_file=job.get("config_file"),
            overrides=job.get("overrides", []), device=job.get("device", "auto"), from_dir=from_dir,
            profile=bool(job.get("profile")), command=job.get("command"), run_dir=run_dir,
            launch=job.get("launch"),
            observers=observers(job.get("track", []), registry, lambda line: print(line, file=sys.stderr)),
        )  # fmt: skip
    except BaseException as exc:  # noqa: BLE001 - every failure is handed to the launcher, then exits
        user = isinstance(exc, MlxError)
        message = " ".join(str(exc).split()) or type(exc).__name__
        # the launcher shows rank 0's log as it runs and then prints the one error line: the
        # traceback goes into the error file, not the log
        import traceback

        print(f"[mlx worker] rank {rank} failed: {message}", file=sys.stderr, flush=True)
        atomic_write_json(
            run_dir / "logs" / f"rank-{rank}.error.json",
            {"rank": rank, "type": type(exc).__name__, "message": message, "user_error": user,
             "exit_code": getattr(exc, "exit_code", 1), "time": time.time(), "traceback": traceback.format_exc()},
        )  # fmt: skip
        return int(getattr(exc, "exit_code", 1)) if user else 1
    finally:
        # the work is over: a SIGTERM from here on (torchrun stopping the job while this
        # interpreter exits) ends the process instead of raising inside exit handlers
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
