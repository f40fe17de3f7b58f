"""Run directories and the manifest, through real `mlx run` invocations."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlx_core.runs import (
    LOCK,
    Manifest,
    atomic_dir,
    atomic_path,
    atomic_write,
    atomic_write_json,
    new_run_dir,
    run_lock,
    sha256,
    sweep_partial_files,
)  # fmt: skip
from mlx_core.testing import one_line_error

from .conftest import manifest


def test_run_writes_complete_manifest(linreg_run: Path):
    m = manifest(linreg_run)
    assert linreg_run.parent.name == "linreg"
    assert m["plugin"] == "linreg" and m["status"] == "completed" and m["device"] == "cpu"
    for stage in ("data", "model", "train", "export"):
        rec = m["stages"][stage]
        assert rec["status"] == "completed" and rec["duration_s"] >= 0 and rec["error"] is None
    assert m["versions"]["mlx-core"] and m["versions"]["mlx-testplugins"] == "0.4.0" and m["versions"]["python"]
    assert m["config"]["train"]["epochs"] == 50 and m["config"]["seed"] == 0  # full resolved config
    assert m["records"]["trained"] is True
    assert abs(m["metrics"]["w"] - 3.0) < 0.3  # it really learned the slope
    arts = {a["path"]: a for a in m["artifacts"]}
    for rel in ("data/points.csv", "export/model.json"):
        assert arts[rel]["size"] == (linreg_run / rel).stat().st_size
        assert arts[rel]["sha256"] == sha256(linreg_run / rel)
    assert not list(linreg_run.rglob("*.tmp")), "no temporary files may be left behind"
    assert not (linreg_run / LOCK).exists()


def test_untrained_model_is_recorded(mlx, runs):
    proc = mlx("run", "linreg", "model", "--runs-dir", str(runs))
    assert proc.returncode == 0, proc.stderr
    m = manifest(Path(proc.stdout.strip().splitlines()[-1]))
    assert m["records"]["trained"] is False
    assert m["stages"].get("train") is None  # stages after the target are not run


def test_wrapper_adds_artifact_to_other_plugins_export(mlx, runs):
    on = mlx(
        "run",
        "linreg",
        "export",
        "--runs-dir",
        str(runs),
        "--set",
        "train.epochs=3",
        "--set",
        "stamp.enabled=true",
        "--set",
        "stamp.text=hello",
    )
    assert on.returncode == 0, on.stderr
    run_dir = Path(on.stdout.strip().splitlines()[-1])
    assert (run_dir / "export" / "STAMP").read_text() == "hello linreg\n"
    m = manifest(run_dir)
    assert [a["kind"] for a in m["artifacts"] if a["stage"] == "export"] == ["model", "stamp"]
    assert m["options"]["stamp"] == {"enabled": True, "text": "hello"}
    off = mlx("run", "linreg", "export", "--runs-dir", str(runs), "--set", "train.epochs=3")
    assert not (Path(off.stdout.strip().splitlines()[-1]) / "export" / "STAMP").exists()


def test_wrapper_options_are_validated(mlx, runs):
    line = one_line_error(mlx("run", "linreg", "data", "--runs-dir", str(runs), "--set", "stamp.enabeld=true"))
    assert "'stamp.enabeld'" in line and "did you mean 'stamp.enabled'" in line


def test_from_continues_in_same_directory_with_its_config(mlx, runs):
    first = mlx("run", "linreg", "data", "--runs-dir", str(runs), "--set", "data.n=40", "--set", "seed=7")
    run_dir = Path(first.stdout.strip().splitlines()[-1])
    data_sha = sha256(run_dir / "data" / "points.csv")
    second = mlx("run", "linreg", "export", "--from", str(run_dir), "--set", "train.epochs=20")
    assert second.returncode == 0, second.stderr
    assert Path(second.stdout.strip().splitlines()[-1]) == run_dir
    m = manifest(run_dir)
    assert m["config"]["data"]["n"] == 40 and m["config"]["seed"] == 7  # kept from the first run
    assert m["config"]["train"]["epochs"] == 20  # overridden now
    assert sha256(run_dir / "data" / "points.csv") == data_sha  # data reused, not regenerated
    assert m["stages"]["export"]["status"] == "completed"
    assert len(m["invocations"]) == 1
    assert len(list((runs / "linreg").iterdir())) == 1


def test_relative_runs_dir_and_from_work_from_any_working_directory(mlx, tmp_path):
    # the default --runs-dir is "runs", relative: plugins still get an absolute ctx.run_dir, so
    # ctx.path(...).relative_to(ctx.run_dir) works (it failed for every real exporter once)
    first = mlx("run", "linreg", "export", "--set", "train.epochs=5", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run_dir = Path(first.stdout.strip().splitlines()[-1])
    assert run_dir.is_absolute() and run_dir.parent == (tmp_path / "runs" / "linreg").resolve()
    rel = run_dir.relative_to(tmp_path.resolve())
    again = mlx("run", "linreg", "export", "--from", str(rel), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    pred = mlx("predict", "linreg", str(rel), "1.5", cwd=tmp_path)
    assert pred.returncode == 0, pred.stderr


HOLD_LOCK = """
import sys, time
from pathlib import Path
from mlx_core.runs import run_lock
with run_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def test_locked_run_directory_is_refused(mlx, linreg_run):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(linreg_run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        line = one_line_error(mlx("run", "linreg", "export", "--from", str(linreg_run)))
        assert "in use by another run" in line and str(holder.pid) in line
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the lock file stays behind
        holder.wait()
    assert (linreg_run / LOCK).exists()
    # the kernel released the dead holder's lock: the file left behind no longer blocks
    proc = mlx("run", "linreg", "export", "--from", str(linreg_run))
    assert proc.returncode == 0, proc.stderr
    assert not (linreg_run / LOCK).exists()


def test_a_lock_file_with_a_live_pid_but_no_lock_does_not_block(tmp_path):
    # what a crashed run on another machine (or a reused pid) leaves: the pid means nothing
    (tmp_path / LOCK).write_text(str(__import__("os").getpid()))
    with run_lock(tmp_path):
        pass
    assert not (tmp_path / LOCK).exists()


def test_nested_lock_in_another_process_is_refused(tmp_path):
    with run_lock(tmp_path):
        proc = subprocess.run(
            [sys.executable, "-c", "import sys; from pathlib import Path; from mlx_core.runs import run_lock\n"
             "with run_lock(Path(sys.argv[1])): pass", str(tmp_path)],
            capture_output=True, text=True,
        )  # fmt: skip
    assert proc.returncode != 0 and "is in use by another run" in proc.stderr


def test_from_removes_partial_files_an_interrupted_run_left(mlx, linreg_run):
    # what a SIGKILL inside atomic_path / atomic_dir leaves behind
    (linreg_run / "export" / ".model.json.a1B2c3d4.tmp").write_text('{"half": ')
    (linreg_run / "export" / ".tokenizer.zz_9YY8x.tmp").mkdir()
    keep = linreg_run / "export" / ".hidden-but-not-ours.tmp"
    keep.write_text("user file")
    proc = mlx("run", "linreg", "export", "--from", str(linreg_run))
    assert proc.returncode == 0, proc.stderr
    assert "removed 2 partial file(s)" in proc.stderr
    assert sorted(p.name for p in (linreg_run / "export").iterdir() if p.name.endswith(".tmp")) == [keep.name]
    last = manifest(linreg_run)["invocations"][-1]
    assert sorted(last["removed_partial_files"]) == [
        "export/.model.json.a1B2c3d4.tmp",
        "export/.tokenizer.zz_9YY8x.tmp",
    ]


def test_sweep_finds_what_atomic_writers_leave(tmp_path):
    # the names the real writers use, interrupted mid-write
    open_writers = [atomic_path(tmp_path / "sub" / "weights.pt"), atomic_dir(tmp_path / "sub" / "tokenizer")]
    left = [cm.__enter__() for cm in open_writers]  # never exited: as if the process died here
    assert all(p.exists() for p in left)
    assert sweep_partial_files(tmp_path) == sorted(left)
    assert list((tmp_path / "sub").iterdir()) == []


def test_atomic_dir_replaces_a_folder_only_when_complete(tmp_path):
    final = tmp_path / "tok"
    with atomic_dir(final) as tmp:
        (tmp / "vocab.txt").write_text("a\n")
    assert (final / "vocab.txt").read_text() == "a\n"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "vocab.txt").write_text("half")
            raise RuntimeError("killed")
    assert (final / "vocab.txt").read_text() == "a\n"  # the old folder is untouched
    with atomic_dir(final) as tmp:
        (tmp / "merges.txt").write_text("m")
    assert sorted(p.name for p in final.iterdir()) == ["merges.txt"]  # replaced, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]  # no temp or old folder left
    assert oct(final.stat().st_mode & 0o777) == oct(0o777 & ~_current_umask())


def test_runs_started_together_get_distinct_directories(tmp_path):
    dirs = {new_run_dir(tmp_path, "p") for _ in range(50)}
    assert len(dirs) == 50
    stamp = time.strftime("%Y%m%d-")
    assert all(d.name.startswith(stamp) for d in dirs)


def test_concurrent_cli_runs_do_not_share_directories(runs):
    cmd = [
        sys.executable,
        "-m",
        "mlx_core",
        "run",
        "linreg",
        "export",
        "--runs-dir",
        str(runs),
        "--set",
        "train.epochs=5",
    ]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    dirs = {o[0].strip().splitlines()[-1] for o in outs}
    assert len(dirs) == 3
    for d in dirs:
        assert manifest(Path(d))["status"] == "completed"


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "model.bin"
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert final.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [final]


def test_manifest_is_valid_json_after_every_update(tmp_path):
    m = Manifest.create(tmp_path, plugin="p")
    for i in range(20):
        m.log_metrics("train", {"loss": 1.0 / (i + 1)}, step=i)
        json.loads((tmp_path / "run.json").read_text())
    assert len(m.data["stages"]["train"]["history"]) == 20


def test_atomic_write_json_roundtrip(tmp_path):
    path = atomic_write_json(tmp_path / "a" / "b.json", {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1}


def test_predict_uses_exported_artifact(mlx, linreg_run):
    proc = mlx("predict", "linreg", str(linreg_run), "0", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["x"] for r in rows] == [0.0, 1.0]
    assert abs((rows[1]["y"] - rows[0]["y"]) - 3.0) < 0.3


def test_ctx_path_refuses_escape(tmp_path):
    from mlx_core import RunError
    from mlx_core.testing import stage_context

    ctx = stage_context(tmp_path, "p")
    assert ctx.path("a", "b.txt") == (tmp_path / "a" / "b.txt").resolve()
    with pytest.raises(RunError, match="escapes the run directory"):
        ctx.path("..", "evil.txt")


def test_atomic_files_get_the_mode_a_plain_open_would(tmp_path):
    import os
    import stat

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = atomic_write(tmp_path / "atomic.txt", "x")
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert stat.S_IMODE(atomic.stat().st_mode) & 0o044 == 0o044 & ~_current_umask()
    assert os.access(atomic, os.R_OK)


def _current_umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
