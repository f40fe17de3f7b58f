"""`mlx sweep` (mlx_core.sweep) on the linreg test plugin: real Optuna studies in sqlite, every
trial a real `mlx run` subprocess."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mlx_core.testing import cli, imported_packages, one_line_error

from .conftest import manifest

optuna = pytest.importorskip("optuna", reason="mlx sweep needs the mlx-core[sweep] extra")


def sweep_args(runs: Path, *extra: str, trials: int = 3, metric: str = "val_mse") -> list[str]:
    return ["sweep", "linreg", "train", "--trials", str(trials), "--metric", metric, "--direction", "minimize",
            "--runs-dir", str(runs), "--set", "train.epochs=20", *extra]  # fmt: skip


def study_of(runs: Path, name: str = "linreg-train-val_mse"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{runs}/sweeps.db")


def sweep_json(runs: Path, name: str = "linreg-train-val_mse") -> dict:
    return json.loads((runs / "sweeps" / name / "sweep.json").read_text())


# --- a whole sweep, read back ---------------------------------------------------------------
@pytest.fixture(scope="module")
def three_trials(tmp_path_factory):
    runs = tmp_path_factory.mktemp("sweep") / "runs"
    proc = cli(*sweep_args(runs, "--space", "train.lr=loguniform(0.01,0.3)", "--seed", "0", "--jobs", "99",
                           "--set", "stamp.text=swept"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return runs, proc


def test_three_trials_are_in_sqlite_and_each_is_an_ordinary_run(three_trials):
    runs, proc = three_trials
    study = study_of(runs)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    for t in study.trials:
        m = manifest(Path(t.user_attrs["run_dir"]))
        assert m["status"] == "completed" and m["plugin"] == "linreg"
        assert m["config"]["train"]["lr"] == t.params["train.lr"]  # the trial's value reached the run
        assert m["config"]["train"]["epochs"] == 20  # and so did the sweep's own --set
        assert t.value == m["metrics"]["val_mse"]
        sweep = m["records"]["sweep"]
        assert sweep["study"] == "linreg-train-val_mse" and sweep["trial"] == t.number
        assert sweep["storage"] == f"sqlite:///{runs}/sweeps.db"
    assert f"--jobs 99 capped at {os.cpu_count()}" in proc.stderr
    if (os.cpu_count() or 1) >= 2:  # two trials at once: the second began before the first ended
        first, second = sorted(study.trials, key=lambda t: t.datetime_start)[:2]
        assert second.datetime_start < first.datetime_complete


def test_results_table_json_plots_and_best_config(three_trials):
    runs, proc = three_trials
    study = study_of(runs)
    data = sweep_json(runs)
    assert data["best"]["number"] == study.best_trial.number and data["best"]["value"] == study.best_value
    assert data["counts"] == {"COMPLETE": 3} and data["space"] == ["train.lr=loguniform(0.01, 0.3)"]
    folder = runs / "sweeps" / "linreg-train-val_mse"
    for png in ("history.png", "importance.png"):
        assert (folder / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((folder / "trials").glob("trial-*.log"))) == 3
    assert "COMPLETE" in proc.stdout and f"best: trial {study.best_trial.number}" in proc.stdout
    assert f"│ {study.best_trial.number} *" in proc.stdout  # the best row is marked
    for t in study.trials:  # and a line on stderr as each trial ended
        assert f"trial {t.number} COMPLETE val_mse={t.value:.6g} " in proc.stderr


def test_best_toml_reproduces_the_best_trial(three_trials, tmp_path):
    runs, _ = three_trials
    study = study_of(runs)
    best = runs / "sweeps" / "linreg-train-val_mse" / "best.toml"
    proc = cli("run", "linreg", "train", "--config", str(best), "--runs-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    again = manifest(Path(proc.stdout.strip().splitlines()[-1]))
    best_run = manifest(Path(study.best_trial.user_attrs["run_dir"]))
    assert again["config"] == best_run["config"] and again["options"] == best_run["options"]
    assert again["options"]["stamp"]["text"] == "swept"  # a changed cross-cutting option is kept
    assert again["metrics"]["val_mse"] == study.best_value


def test_rerun_of_a_finished_sweep_runs_no_trial(three_trials):
    runs, _ = three_trials
    before = sorted(runs.glob("linreg/*"))
    proc = cli(*sweep_args(runs, "--space", "train.lr=loguniform(0.01,0.3)"))
    assert proc.returncode == 0, proc.stderr
    assert "3 finished trial(s), 0 to run" in proc.stderr
    assert sorted(runs.glob("linreg/*")) == before and len(study_of(runs).trials) == 3


def test_timeout_starts_no_trial_after_it(tmp_path):
    """Each trial sleeps 10 s (20 steps x 0.5 s): after the first, the 5 s timeout has passed."""
    storage = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    proc = cli(*sweep_args(tmp_path, "--space", "train.lr=uniform(0.05,0.1)", "--set", "train.step_delay=0.5",
                           "--timeout", "5", "--storage", storage, "--study", "timed"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [t.state.name for t in optuna.load_study(study_name="timed", storage=storage).trials] == ["COMPLETE"]
    assert not (tmp_path / "sweeps.db").exists() and (tmp_path / "sweeps" / "timed" / "sweep.json").is_file()


# --- kill and resume: trials block on a FIFO the test feeds, so the kill instant is fixed ----
CSV = "x,y\n" + "".join(f"{x / 25 - 1:.4f},{3 * (x / 25 - 1) - 1:.4f}\n" for x in range(50))


def _open_writer(fifo: Path, proc: subprocess.Popen) -> int | None:
    """Open the FIFO for writing once a reader (a trial's data stage) has it open; None if the
    sweep ended first."""
    while proc.poll() is None:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
        time.sleep(0.02)
    return None


def _wait_runs(runs: Path, n: int, proc: subprocess.Popen) -> None:
    while len(list(runs.glob("linreg/*/run.json"))) < n:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.02)


def _feed(fifo: Path, fd: int | None) -> None:
    assert fd is not None, "the sweep ended before a trial opened the FIFO"
    os.set_blocking(fd, True)
    os.write(fd, CSV.encode())
    os.close(fd)


def test_killed_sweep_resumes_without_repeating_finished_trials(tmp_path):
    runs, fifo = tmp_path / "runs", tmp_path / "points.csv"
    os.mkfifo(fifo)
    cmd = [sys.executable, "-m", "mlx_core", *sweep_args(runs, "--space", "train.lr=loguniform(0.01,0.3)",
           "--sampler", "random", "--seed", "1", "--set", f"data.path={fifo}")]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_runs(runs, 1, proc)
        _feed(fifo, _open_writer(fifo, proc))  # trial 0 reads its data and finishes
        _wait_runs(runs, 2, proc)
        held = _open_writer(fifo, proc)  # trial 1 waits at the FIFO: it cannot finish
        assert held is not None
        states = {t.number: t.state.name for t in study_of(runs).trials}
        assert states == {0: "COMPLETE", 1: "RUNNING"}
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its trial, as a crash would
        proc.communicate(timeout=60)
    os.close(held)
    assert sweep_json(runs)["counts"] == {"COMPLETE": 1}  # written after trial 0, before trial 1 began
    interrupted_params = study_of(runs).trials[1].params

    # the same command again, fed by a thread: one feed per new trial run directory
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def feeder() -> None:
        fed = 2
        while proc.poll() is None:
            if len(list(runs.glob("linreg/*/run.json"))) > fed:
                fd = _open_writer(fifo, proc)
                if fd is None:
                    return
                _feed(fifo, fd)
                fed += 1
            time.sleep(0.02)

    thread = threading.Thread(target=feeder, daemon=True)
    thread.start()
    out, err = proc.communicate(timeout=300)
    thread.join(timeout=10)
    assert proc.returncode == 0, err[-3000:]
    assert "1 finished trial(s), 2 to run" in err
    trials = study_of(runs).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].user_attrs["mlx_interrupted"] is True and "interrupted" in trials[1].user_attrs["error"]
    assert trials[2].params == interrupted_params and trials[2].user_attrs["mlx_retry_of"] == 1
    assert trials[3].params != trials[0].params  # the resumed sampler's seed is offset: no replayed draw
    # trial 0 ran once: one run directory records it
    numbers = [manifest(p.parent)["records"].get("sweep", {}).get("trial") for p in runs.glob("linreg/*/run.json")]
    assert sorted(numbers) == [0, 1, 2, 3]
    assert sweep_json(runs)["counts"] == {"COMPLETE": 3, "FAIL": 1}


# --- pruning ---------------------------------------------------------------------------------
def test_a_worse_trial_is_pruned_at_its_first_report_after_the_warmup(tmp_path):
    """Median pruning after one completed trial (--prune-after 1): a second sweep of the same study
    with a learning rate 200x smaller is worse at every step than trial 0 was; --prune-warmup 15
    spares its step 10, so it is pruned at step 20."""
    runs = tmp_path / "runs"
    common = ["--pruner", "median", "--prune-after", "1"]
    first = cli(*sweep_args(runs, *common, "--space", "train.lr=uniform(0.19,0.2)", trials=1, metric="train_mse"))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "importance.png skipped: it needs 2 completed trial(s), the study has 1" in first.stdout
    second = cli(*sweep_args(runs, *common, "--prune-warmup", "15", "--space", "train.lr=uniform(0.001,0.0011)",
                             trials=2, metric="train_mse"))  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    study = study_of(runs, "linreg-train-train_mse")
    t0, t1 = study.trials
    assert (t0.state.name, t1.state.name) == ("COMPLETE", "PRUNED")
    assert list(t1.intermediate_values) == [10, 20] and t1.intermediate_values[20] > t0.intermediate_values[20]
    m = manifest(Path(t1.user_attrs["run_dir"]))
    assert m["status"] == "pruned" and m["stages"]["train"]["status"] == "pruned"
    assert [h["step"] for h in m["stages"]["train"]["history"]] == [10, 20]  # stopped at once
    assert "pruned at step 20" in t1.user_attrs["error"] and "PRUNED" in second.stdout
    assert t1.user_attrs["exit_code"] == 3


# --- failures --------------------------------------------------------------------------------
def test_a_changed_choice_list_needs_a_new_study(tmp_path):
    first = cli(*sweep_args(tmp_path, "--space", "train.lr=choice(0.1, 0.2)", trials=1))
    assert first.returncode == 0, first.stderr[-3000:]
    line = one_line_error(cli(*sweep_args(tmp_path, "--space", "train.lr=choice(0.1, 0.3)", trials=2)))
    assert "study 'linreg-train-val_mse' drew train.lr from choice(0.1, 0.2)" in line and "--study" in line
    other = cli(*sweep_args(tmp_path, "--space", "train.lr=choice(0.1, 0.2)", "--study", "linreg-train-val_mse"),
                "--metric", "train_mse")  # fmt: skip
    assert "is a sweep of {'plugin': 'linreg', 'stage': 'train', 'metric': 'val_mse'}" in one_line_error(other)


def test_no_completed_trial_exits_1_with_the_reason(tmp_path):
    proc = cli("sweep", "linreg", "export", "--trials", "1", "--metric", "val_mse", "--direction", "minimize",
               "--runs-dir", str(tmp_path), "--set", "train.epochs=10",
               "--space", "export.fail_parity=choice(true)")  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: no trial of study 'linreg-export-val_mse' completed ({'FAIL': 1}): "
        "exported model differs from the trained one (mse diff 1.0)"
    ]


def test_recover_fails_only_dead_local_trials_and_requeues_them(tmp_path):
    import socket

    from mlx_core.sweep import _recover

    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    owners = {"dead": (socket.gethostname(), int(dead.stdout)), "alive": (socket.gethostname(), os.getpid()),
              "elsewhere": ("another-host", 1)}  # fmt: skip
    for host, pid in owners.values():
        t = study.ask()
        t.suggest_float("x", 0, 1)
        t.set_user_attr("mlx_host", host)
        t.set_user_attr("mlx_pid", pid)

    class Plan:
        study_name = "s"

    notes = _recover(optuna, study, study._storage, Plan())
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "RUNNING", "RUNNING", "WAITING"], notes
    waiting = study.trials[3]
    assert waiting.user_attrs == {"mlx_retry_of": 0} and waiting.system_attrs["fixed_params"] == study.trials[0].params
    assert _recover(optuna, study, study._storage, Plan()) == []  # enqueued once only


def test_a_failing_trial_is_recorded_with_its_error_and_the_sweep_goes_on(tmp_path):
    runs = tmp_path / "runs"
    proc = cli("sweep", "linreg", "export", "--trials", "2", "--metric", "val_mse", "--direction", "minimize",
               "--runs-dir", str(runs), "--set", "train.epochs=10", "--sampler", "grid",
               "--space", "export.fail_parity=choice(true, false)")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = study_of(runs, "linreg-export-val_mse")
    by_param = {t.params["export.fail_parity"]: t for t in study.trials}
    assert by_param[True].state.name == "FAIL" and by_param[False].state.name == "COMPLETE"
    assert by_param[True].user_attrs["error"] == "exported model differs from the trained one (mse diff 1.0)"
    rows = {r["number"]: r for r in sweep_json(runs, "linreg-export-val_mse")["trials"]}
    assert rows[by_param[True].number]["error"] == by_param[True].user_attrs["error"]


def test_a_metric_the_run_never_logs_stops_the_sweep_with_one_line(tmp_path):
    proc = cli(*sweep_args(tmp_path, "--space", "train.lr=uniform(0.05,0.1)", trials=2, metric="val_acc"))
    line = one_line_error(proc, during_run=True)
    assert "--metric val_acc: trial 0's run completed without logging it; it logged: b, train_mse, val_mse, w" in line
    assert len(study_of(tmp_path, "linreg-train-val_acc").trials) == 1


BAD_SPACES = [
    (["--space", "train.lrr=uniform(0.1,0.2)"], "unknown config key 'train.lrr' in --space train.lrr=uniform(0.1,0.2); did you mean 'train.lr'?"),
    (["--space", "train.lr=uniform(0,0.5)"], "invalid value 0 for config key 'train.lr' in --space train.lr=uniform(0,0.5): Input should be greater than 0"),
    (["--space", "train.epochs=int(10,200000)"], "invalid value 200000 for config key 'train.epochs' in --space train.epochs=int(10,200000): Input should be less than or equal to 100000"),
    (["--space", "export.format=choice(json, onnx)"], "invalid value 'onnx' for config key 'export.format' in --space export.format=choice(json, onnx): Input should be 'json'"),
    (["--space", "train.epochs=uniform(1,5)"], "uniform(...) does not fit 'train.epochs', which is an integer: use int(a, b) or choice(...)"),
    (["--space", "data.path=loguniform(1,2)"], "loguniform(...) does not fit 'data.path', which is a string: use choice(...)"),
    (["--space", "export.fail_parity=int(0,1)"], "int(...) does not fit 'export.fail_parity', which is a boolean: use choice(true, false)"),
    (["--space", "export.format=uniform(0,1)"], "uniform(...) does not fit 'export.format', which is one of 'json': use choice(...)"),
    (["--space", "train.lr=normal(0,1)"], "unknown distribution 'normal'; expected one of uniform, loguniform, int, choice"),
    (["--space", "train.lr=uniform(0.2,0.1)"], "the low end 0.2 must be below the high end 0.1"),
    (["--space", "train.lr"], "invalid --space 'train.lr': expected KEY=DIST(ARGS)"),
    (["--sampler", "grid", "--space", "train.lr=uniform(0.1,0.2)"], "--sampler grid needs a finite space (choice(...) only); train.lr=uniform(0.1, 0.2) is a range"),
    (["--space-from-schema", "train.lr"], "--space-from-schema train.lr: 'train.lr' (float) has no upper bound in the plugin's schema"),
    (["--space", "train.lr=uniform(0.1,0.2)", "--space", "train.lr=uniform(0.1,0.3)"], "--space: key 'train.lr' is given more than once"),
    ([], "mlx sweep needs a search space: --space KEY=DIST(ARGS) or --space-from-schema KEY"),
]  # fmt: skip


@pytest.mark.parametrize("extra, message", BAD_SPACES, ids=[" ".join(e) or "none" for e, _ in BAD_SPACES])
def test_bad_space_is_one_line_before_any_trial(tmp_path, extra, message):
    proc = cli(*sweep_args(tmp_path, *extra))
    line = one_line_error(proc)
    assert message in line, line
    assert not (tmp_path / "linreg").exists() and not (tmp_path / "sweeps.db").exists()


def test_space_from_schema_uses_the_fields_own_bounds_and_choices():
    from mlx_core.sweep_space import from_schema
    from mlx_testplugins.linreg import LinregConfig

    base = LinregConfig().model_dump(mode="json")
    assert from_schema(LinregConfig, base, "train.step_delay").text == "train.step_delay=uniform(0.0, 5.0)"
    assert from_schema(LinregConfig, base, "train.epochs").text == "train.epochs=int(1, 100000)"
    assert from_schema(LinregConfig, base, "export.format").text == 'export.format=choice("json")'
    assert from_schema(LinregConfig, base, "export.fail_parity").text == "export.fail_parity=choice(false, true)"


def test_without_optuna_one_line_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['optuna'] = None; sys.argv = ['mlx', *sys.argv[1:]]; "
            "from mlx_core.entry import main; main()")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, *sweep_args(tmp_path, "--space", "train.lr=uniform(0.1,0.2)")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert one_line_error(proc) == "error: mlx sweep needs Optuna: pip install 'mlx-core[sweep]'"


def test_listing_plugins_imports_no_sweep_library():
    assert not {"optuna", "sqlalchemy", "matplotlib"} & set(imported_packages("plugins", "list"))
    assert not {"optuna", "sqlalchemy", "matplotlib"} & set(imported_packages("--help"))


# --- MLflow: trials nested in one parent run (the tracker lives in mlx_core.tracking) ---------
def test_track_mlflow_nests_trials_in_one_parent_run(tmp_path):
    try:
        import mlx_core.tracking  # noqa: F401
    except ImportError:
        pytest.skip("mlx_core.tracking (the MLflow tracker of issue 16) is not on this branch yet")
    mlflow = pytest.importorskip("mlflow", reason="--track mlflow needs mlx-core[mlflow]")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = cli(*sweep_args(tmp_path / "runs", "--space", "train.lr=uniform(0.05,0.2)", "--track", f"mlflow={uri}",
                           trials=2))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parents = [r for r in runs if r.data.tags.get("mlx.study") == "linreg-train-val_mse"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == 2
    # artifacts next to the database (MLflow's default, ./mlruns in the working directory, is not used)
    assert all(r.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri()) for r in runs)
