"""The launcher's torch-free half: options and the [launch] table, the torchrun command, the
refusal of a plugin that does not distribute, ctx.dist, and the one line of a failed job.
(Launched runs themselves need torch: tests/recsys/test_distributed.py.)"""

from __future__ import annotations

import json

import pytest

from mlx_core import PluginInfo, UsageError
from mlx_core.dist import DistInfo
from mlx_core.launch import LaunchSpec, WorkerFailed, failure, spec_for, torchrun_command
from mlx_core.testing import assert_one_line_error, one_line_error


def test_the_worker_command_is_torchrun_with_every_option_and_the_job_last():
    spec = LaunchSpec(nproc=3, nnodes="1:4", node_rank=2, rdzv_endpoint="10.0.0.1:29400", rdzv_id="job7",
                      max_restarts=2, rdzv_timeout=60)  # fmt: skip
    job = {"plugin": "p", "stage": "train", "run_dir": "/r/p/job7", "overrides": ["a=1"]}
    cmd = torchrun_command(spec, job, python="/venv/bin/python")
    assert cmd[:3] == ["/venv/bin/python", "-m", "torch.distributed.run"]
    for opt in ("--nnodes=1:4", "--nproc-per-node=3", "--node-rank=2", "--rdzv-backend=c10d",
                "--rdzv-endpoint=10.0.0.1:29400", "--rdzv-id=job7", "--max-restarts=2",
                "--rdzv-conf=join_timeout=60"):  # fmt: skip
        assert opt in cmd, (opt, cmd)
    assert cmd[-3:-1] == ["-m", "mlx_core.worker"]
    assert json.loads(cmd[-1]) == job
    # one node without an endpoint: a free loopback port, the run's name as the job id
    local = torchrun_command(LaunchSpec(nproc=2), job)
    assert any(a.startswith("--rdzv-endpoint=127.0.0.1:") for a in local)
    assert "--rdzv-id=job7" in local


@pytest.mark.parametrize(
    ("given", "names"),
    [
        ({"nproc": 0}, ["--nproc", "0"]),
        ({"nnodes": "3:1"}, ["--nnodes", "3:1"]),
        ({"nnodes": "two"}, ["--nnodes", "two"]),
        ({"nnodes": "2"}, ["--nnodes", "--rdzv-endpoint", "--rdzv-id"]),
        ({"nnodes": "2", "rdzv_endpoint": "h:1", "rdzv_id": "j", "node_rank": 2}, ["--node-rank", "2"]),
        ({"rdzv_endpoint": "nohost"}, ["--rdzv-endpoint", "nohost"]),
        ({"max_restarts": -1}, ["--max-restarts", "-1"]),
    ],
)
def test_bad_launch_options_are_one_line(given, names):
    with pytest.raises(UsageError) as err:
        spec_for(None, given)
    assert_one_line_error(err.value, *names, types=(UsageError,))


def test_the_launch_table_is_read_and_the_command_line_wins(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[launch]\nnproc = 4\nnnodes = "1:2"\nrdzv_endpoint = "h:29400"\nrdzv_id = "j"\n'
                   "collective_timeout = 30\n[train]\nepochs = 2\n")  # fmt: skip
    spec = spec_for(cfg, {"nproc": 2})
    assert (spec.nproc, spec.nnodes, spec.rdzv_id, spec.collective_timeout) == (2, "1:2", "j", 30)
    assert spec.distributed and spec.multi_node
    bad = tmp_path / "bad.toml"
    bad.write_text("[launch]\nnprocs = 2\n")
    with pytest.raises(Exception) as err:
        spec_for(bad, {})
    assert_one_line_error(err.value, "nprocs", str(bad))


def test_a_plugin_that_does_not_distribute_is_refused_before_any_work(mlx, runs, tmp_path):
    proc = mlx("run", "linreg", "train", "--runs-dir", str(runs), "--nproc", "2")
    one_line_error(proc, "linreg", "--nproc 2", "distribute")
    assert not runs.exists()  # no run directory, no worker
    # the same from the config's [launch] table; the table never reaches the plugin's config
    cfg = tmp_path / "c.toml"
    cfg.write_text("[launch]\nnproc = 2\n[train]\nepochs = 3\n")
    one_line_error(mlx("run", "linreg", "train", "--runs-dir", str(runs), "--config", str(cfg)), "--nproc 2")
    ok = mlx("run", "linreg", "train", "--runs-dir", str(runs), "--config", str(cfg), "--nproc", "1")
    assert ok.returncode == 0, ok.stderr
    assert "launch" not in json.loads((runs.joinpath("linreg").iterdir().__next__() / "run.json").read_text())


def test_dist_reads_torchruns_environment(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    alone = DistInfo.from_env()
    assert (alone.rank, alone.world_size, alone.is_main, alone.launched, alone.distributed) == (
        0,
        1,
        True,
        False,
        False,
    )
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1",
           "TORCHELASTIC_RUN_ID": "j", "MLX_COLLECTIVE_TIMEOUT": "12"}  # fmt: skip
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    d = DistInfo.from_env()
    assert (d.rank, d.world_size, d.local_rank, d.local_world_size, d.node_rank) == (3, 4, 1, 2, 1)
    assert not d.is_main and d.launched and d.distributed and d.timeout_s == 12


def test_distribute_is_one_of_the_known_ways():
    assert PluginInfo(name="p", summary="s").distribute == "none"
    assert PluginInfo(name="p", summary="s", distribute="torch-ddp").problems() == []
    assert any("'mpi'" in p for p in PluginInfo(name="p", summary="s", distribute="mpi").problems())


def test_a_failed_job_is_one_line_naming_the_first_rank_that_raised(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "rank-0.error.json").write_text(json.dumps(
        {"rank": 0, "type": "Terminated", "message": "terminated (SIGTERM)", "user_error": False, "time": 2.0}))  # fmt: skip
    (logs / "rank-1.error.json").write_text(json.dumps(
        {"rank": 1, "type": "RuntimeError", "message": "boom", "user_error": False, "time": 1.0}))  # fmt: skip
    err = failure(tmp_path, logs / "launcher.node0.log", 1)
    assert isinstance(err, WorkerFailed) and err.exit_code == 1
    assert_one_line_error(err, "rank 1", "RuntimeError: boom", types=(WorkerFailed,))
    # a worker killed without a word: torchrun's summary names it
    for p in logs.glob("*.json"):
        p.unlink()
    (logs / "launcher.node0.log").write_text(
        "Failures:\n  <NO_OTHER_FAILURES>\nRoot Cause (first observed failure):\n[0]:\n  time : x\n"
        "  host : h\n  rank      : 1 (local_rank: 1)\n  exitcode  : -9 (pid: 12)\n"
    )
    err = failure(tmp_path, logs / "launcher.node0.log", 1)
    assert_one_line_error(err, "rank 1", "SIGKILL", types=(WorkerFailed,))
