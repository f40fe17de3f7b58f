"""Two gloo processes through the core launcher (`mlx run --nproc 2`: torch.distributed.run),
with planner constraints (the shared ``trained_run`` fixture is a 2-process run: see
conftest.TWO_PROCESSES); two nodes on loopback; a rank that raises; a killed worker resumed
with one process. Faults are deterministic (mlx_core.faults: MLX_TEST_SIGKILL / MLX_TEST_RAISE
at a named instant, on the rank MLX_TEST_FAULT_RANK names)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mlx_core.launch import free_port

from .conftest import DEVICE, NPROC_2, TINY, TWO_PROCESSES, run


def test_two_processes_follow_the_constraints(trained_run):
    run_dir, m = trained_run
    assert m["records"]["world_size"] == 2
    plan = json.loads((run_dir / "train" / "plan.json").read_text())
    assert plan["product_table"]["sharding_type"] == "row_wise"
    assert plan["product_table"]["ranks"] == [0, 1]
    assert [s["sizes"] for s in plan["product_table"]["shards"]] == [[256, 8], [256, 8]]
    assert plan["user_table"]["sharding_type"] == "column_wise"
    hist = m["stages"]["train"]["history"]
    assert [h["step"] for h in hist] == [1, 2]
    assert hist[1]["train_loss"] < hist[0]["train_loss"]


def test_two_processes_record_the_launch_once_and_end_with_equal_weights(trained_run):
    run_dir, m = trained_run
    launch = m["launch"]
    assert (launch["nproc"], launch["world_size"], launch["backend"], launch["rdzv_backend"]) == (2, 2, "gloo", "c10d")
    assert launch["rdzv_endpoint"].startswith("127.0.0.1:") and launch["rdzv_id"] == run_dir.name
    ranks = launch["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["samples_per_s"] > 0 for r in ranks)
    assert launch["samples_per_s"] == sum(r["samples_per_s"] for r in ranks)
    # the data-parallel (dense) weights are replicated: every rank ends with the same bytes
    assert len({r["dense_weights_sha256"] for r in ranks}) == 1
    # one manifest (rank 0's), every rank's output in its own log, export by rank 0 only
    assert list(run_dir.rglob("run.json")) == [run_dir / "run.json"]
    logs = sorted(p.name for p in (run_dir / "logs").glob("rank-*.log"))
    assert logs == ["rank-0.log", "rank-1.log"]
    assert "rank 1 of 2" in (run_dir / "logs" / "rank-1.log").read_text()
    assert m["stages"]["export"]["status"] == "completed"


def _mlx(*args: str, env: dict[str, str] | None = None) -> list[str]:
    return [sys.executable, "-m", "mlx_core", "run", "recsys", *args]


def test_two_nodes_on_loopback_form_one_job(tmp_path):
    """Two `mlx run` processes, as two machines would run them (no shared runs folder): one job
    of world size 2; the node that drew global rank 0 keeps run.json and the artifacts, the
    other only its logs; each node generated its own data."""
    port = free_port()
    sets = [a for s in [*TINY, *TWO_PROCESSES, "train.max_steps=4"] for a in ("--set", s)]
    procs = [
        subprocess.Popen(
            _mlx(
                "train",
                "--runs-dir",
                str(tmp_path / f"node{k}"),
                "--device",
                DEVICE,
                *sets,
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
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for k in (0, 1)
    ]
    outs = [p.communicate(timeout=400) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    dirs = [tmp_path / f"node{k}" / "recsys" / "loop" for k in (0, 1)]
    assert [Path(out.strip().splitlines()[-1]) for out, _ in outs] == dirs
    main = [d for d in dirs if (d / "run.json").exists()]
    assert len(main) == 1
    (other,) = set(dirs) - set(main)
    m = json.loads((main[0] / "run.json").read_text())
    assert (m["launch"]["world_size"], m["launch"]["nnodes"], m["launch"]["rdzv_id"]) == (2, "2", "loop")
    assert m["stages"]["train"]["status"] == "completed" and (main[0] / "checkpoints" / "last.pt").exists()
    assert not (other / "checkpoints" / "last.pt").exists() and not (other / "train" / "curves.png").exists()
    assert len(list(other.glob("logs/rank-*.log"))) == 1 and len(list(main[0].glob("logs/rank-*.log"))) == 1
    for d in dirs:
        assert (d / "data" / "clicks.tsv").exists()


def test_a_rank_that_raises_ends_the_run_in_one_line(tmp_path):
    env = {**os.environ, "MLX_TEST_RAISE": "recsys:mid_epoch:1", "MLX_TEST_FAULT_RANK": "1"}
    proc = run("train", tmp_path / "runs", *TINY, *TWO_PROCESSES, extra=NPROC_2, env=env)
    ended = time.time()
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert errors == [lines[-1]] and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "rank 1 failed: RuntimeError: test fault at recsys:mid_epoch:1" in errors[0]
    (run_dir,) = (tmp_path / "runs" / "recsys").iterdir()
    raised = json.loads((run_dir / "logs" / "rank-1.error.json").read_text())
    assert ended - raised["time"] < 60  # from the raise to the end of every process
    m = json.loads((run_dir / "run.json").read_text())
    assert m["status"] == "failed" and "rank 1" in m["launch"]["error"]


def test_a_killed_worker_resumes_with_one_process(tmp_path):
    env = {**os.environ, "MLX_TEST_SIGKILL": "recsys:mid_epoch:2", "MLX_TEST_FAULT_RANK": "1"}
    proc = run("train", tmp_path / "runs", *TINY, *TWO_PROCESSES, "train.epochs=2", extra=NPROC_2, env=env)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "rank 1 died (killed by signal 9 (SIGKILL))" in proc.stderr.splitlines()[-1]
    (run_dir,) = (tmp_path / "runs" / "recsys").iterdir()
    resumed = run("train", tmp_path / "runs", extra=("--from", str(run_dir)))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "after epoch 1" in resumed.stderr
    m = json.loads((run_dir / "run.json").read_text())
    assert m["stages"]["train"]["status"] == "completed"
    assert [h["step"] for h in m["stages"]["train"]["history"]] == [1, 2]
    # 2 processes' fused-optimizer shards do not fit 1 process: weights and dense Adam come back
    assert any("resumed from checkpoints/last.pt (weights and dense Adam state)" in n for n in m["notes"])
