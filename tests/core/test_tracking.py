"""Trackers (mlx_core.tracking): opt-in, plugins of the mlx_trackers hook, never failing a run.

MLflow and TensorBoard are the real libraries (the core session installs mlx-core[mlflow,tensorboard]);
the third-party path is the test plugins' `jsonl` tracker, registered by entry point."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mlx_core import tracking
from mlx_core.errors import MlxError
from mlx_core.plugins import Registry
from mlx_core.runner import run
from mlx_core.runs import Manifest, atomic_write_json, run_lock
from mlx_core.runsdb import flatten, read
from mlx_core.testing import TRACKER_LIBRARIES, cli, heavy_imports, imported_packages, one_line_error
from mlx_core.tracking.mlflow import artifact_location

from .conftest import manifest


def _run_dir(proc) -> Path:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Path(proc.stdout.strip().splitlines()[-1])


def _history(data: dict, key: str) -> list[tuple[int, float]]:
    return [(r["step"], r[key]) for s in data["stages"].values() for r in s.get("history", []) if key in r]


# --- the hook, discovery and opt-in ---------------------------------------------------------------
def test_builtin_and_third_party_trackers_come_through_entry_points():
    factories, broken = tracking.discover()
    assert {"mlflow", "tensorboard", "jsonl"} <= set(factories) and broken == {}
    listed = json.loads(cli("plugins", "list", "--json").stdout)
    names = {r["name"] for r in listed}
    assert not names & {"mlflow", "tensorboard", "jsonl"}  # trackers are not plugins of the mlx group
    assert "tracker" not in json.dumps([r for r in listed if r["status"] == "broken"])


def test_listing_discovery_and_untracked_runs_import_no_tracker_library(tmp_path):
    assert heavy_imports("plugins", "list") == []  # HEAVY_LIBRARIES includes the tracker libraries
    for argv in (
        ("run", "linreg", "data", "--runs-dir", str(tmp_path)),
        ("run", "linreg", "data", "--runs-dir", str(tmp_path), "--track", "jsonl"),
        ("runs", "list", "--runs-dir", str(tmp_path)),
    ):
        assert not set(imported_packages(*argv)) & set(TRACKER_LIBRARIES), argv
    code = "import json, sys; from mlx_core import tracking; tracking.discover(); print(json.dumps(list(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert not {m.split(".")[0] for m in json.loads(loaded)} & set(TRACKER_LIBRARIES)


def test_a_third_party_tracker_hears_the_run_and_replays_it_on_sync(tmp_path):
    run_dir = _run_dir(cli("run", "linreg", "train", "--runs-dir", str(tmp_path), "--set", "train.epochs=30",
                           "--track", "jsonl"))  # fmt: skip
    events = [json.loads(x) for x in (run_dir / "tracked.jsonl").read_text().splitlines()]
    assert events[0] == {"event": "start", "id": run_dir.name} and events[-1] == {"event": "end", "status": "completed"}
    assert [e["step"] for e in events if e["event"] == "metrics" and e["step"] is not None] == [10, 20, 30]
    proc = cli("runs", "sync", str(run_dir), "--to", "jsonl=replay.jsonl", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"run": str(run_dir), "tracker": "jsonl", "status": "completed"}
    replay = [json.loads(x) for x in (run_dir / "replay.jsonl").read_text().splitlines()]
    assert [e["step"] for e in replay if e["event"] == "metrics" and e["step"] is not None] == [10, 20, 30]


def test_unknown_tracker_bad_value_and_missing_extra_are_one_line_before_the_run(tmp_path):
    base = ("run", "linreg", "data", "--runs-dir", str(tmp_path))
    line = one_line_error(cli(*base, "--track", "wandb"))
    assert "unknown tracker 'wandb'" in line and "mlflow" in line and "tensorboard" in line
    assert "tensorboard=x" in one_line_error(cli(*base, "--track", "tensorboard=x"))
    assert "expected a file name" in one_line_error(cli(*base, "--track", "jsonl=a/b"))
    for lib, extra in (("mlflow", "mlflow"), ("tensorboard", "tensorboard")):
        code = (
            f"import sys; sys.modules[{lib!r}] = None; sys.argv = ['mlx', *{[*base, '--track', lib]!r}]; "
            "from mlx_core.entry import main; main()"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert f"pip install 'mlx-core[{extra}]'" in one_line_error(proc)
    assert not (tmp_path / "linreg").exists()  # no run was started


def test_only_rank_zero_tracks(monkeypatch):
    warn = [].append
    for env, expected in (({}, 1), ({"RANK": "0", "LOCAL_RANK": "0"}, 1), ({"RANK": "1"}, 0), ({"LOCAL_RANK": "2"}, 0)):
        for var in ("RANK", "LOCAL_RANK"):
            monkeypatch.delenv(var, raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        assert len(tracking.observers(["jsonl"], None, warn)) == expected, env


def test_rank_one_writes_nothing(tmp_path):
    run_dir = _run_dir(cli("run", "linreg", "data", "--runs-dir", str(tmp_path), "--track", "jsonl", env={"RANK": "1"}))
    assert not (run_dir / "tracked.jsonl").exists()


def test_series_rule_summary_values_do_not_add_points_to_their_curve():
    s = tracking.Series()
    assert s.points({"loss": 2.0, "note": "text"}, 1) == [("loss", 1, 2.0)]
    assert s.points({"loss": 1.0}, 2) == [("loss", 2, 1.0)]
    assert s.points({"loss": 1.0, "acc": 0.5, "ok": True}, None) == [("acc", 0, 0.5), ("ok", 0, 1.0)]
    assert s.points({"loss": 0.9}, None) == [("loss", 2, 0.9)]  # a different final value: the latest at that step


# --- TensorBoard ----------------------------------------------------------------------------------
def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_event_files_hold_the_run_json_scalars_and_sync_rewrites_them(tmp_path):
    pytest.importorskip("tensorboard")
    run_dir = _run_dir(cli("run", "linreg", "train", "--runs-dir", str(tmp_path), "--set", "train.epochs=30",
                           "--track", "tensorboard"))  # fmt: skip
    data = manifest(run_dir)
    live = _scalars(run_dir / "tensorboard")
    assert live["train_mse"] == [(s, pytest.approx(v, rel=1e-6)) for s, v in _history(data, "train_mse")]
    for key in ("val_mse", "w", "b"):  # summary values: a point at step 0
        assert live[key] == [(0, pytest.approx(data["metrics"][key], rel=1e-6))]
    for _ in range(2):
        assert cli("runs", "sync", str(run_dir), "--to", "tensorboard").returncode == 0
    assert len(list((run_dir / "tensorboard").iterdir())) == 1  # rewritten, not appended to
    assert _scalars(run_dir / "tensorboard") == live


# --- MLflow ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite MLflow store for the module (creating one takes seconds)."""
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder}/mlflow.db"
    return uri, MlflowClient(tracking_uri=uri)


def _mlflow_runs(client, run_id: str) -> list:
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, filter_string=f"tags.`mlx.run_id` = '{run_id}'")


def _artifacts(client, run_id: str, folder: str | None = None) -> set[str]:
    out = set()
    for info in client.list_artifacts(run_id, folder):
        out |= _artifacts(client, run_id, info.path) if info.is_dir else {info.path}
    return out


def _expected_params(data: dict) -> dict[str, str]:
    flat = {**flatten(data["config"]), **flatten(data["options"])}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in flat.items()}


def test_mlflow_run_has_the_config_history_artifacts_and_status(store, tmp_path):
    uri, client = store
    warnings: list[str] = []
    obs = tracking.observers([f"mlflow={uri}"], Registry(), warnings.append)
    m = run(Registry(), "linreg", "export", runs_dir=tmp_path, overrides=["train.epochs=30"], observers=obs)
    assert warnings == []
    (found,) = _mlflow_runs(client, m.data["id"])
    assert found.info.status == "FINISHED" and found.data.tags["mlx.status"] == "completed"
    assert found.data.params == _expected_params(m.data) and found.data.params["train.epochs"] == "30"
    history = client.get_metric_history(found.info.run_id, "train_mse")
    assert [(h.step, h.value) for h in history] == _history(m.data, "train_mse") != []
    assert found.data.metrics["val_mse"] == m.data["metrics"]["val_mse"]
    assert found.data.tags["mlx.version.mlx-core"] == m.data["versions"]["mlx-core"]
    assert _artifacts(client, found.info.run_id) == {"data/points.csv", "export/model.json", "run.json"}
    assert client.get_experiment(found.info.experiment_id).name == "linreg"  # the plugin's name
    # next to the database, not in ./mlruns of whatever directory the run started in
    store_dir = Path(uri[len("sqlite:///") :]).parent
    assert found.info.artifact_uri.startswith((store_dir / "mlartifacts").as_uri())
    assert (store_dir / "mlartifacts").is_dir()


def test_mlflow_failed_run_ends_failed(store, tmp_path, monkeypatch):
    uri, client = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # --track mlflow without a URI: MLflow's own setting
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "mine")
    obs = tracking.observers(["mlflow"], None, [].append)
    with pytest.raises(MlxError):
        run(Registry(), "linreg", "train", runs_dir=tmp_path, overrides=["data.path=/nonexistent.csv"], observers=obs)
    (run_dir,) = (tmp_path / "linreg").iterdir()
    (found,) = _mlflow_runs(client, run_dir.name)
    assert found.info.status == "FAILED" and found.data.tags["mlx.status"] == "failed"
    assert client.get_experiment(found.info.experiment_id).name == "mine"


def test_mlflow_nests_under_the_parent_run_a_sweep_names(store, tmp_path, monkeypatch):
    uri, client = store
    exp = client.create_experiment("sweep-parent", artifact_location=artifact_location(uri))
    parent = client.create_run(exp).info.run_id
    monkeypatch.setenv("MLX_TRACK_PARENT_RUN_ID", parent)
    m = run(
        Registry(), "linreg", "data", runs_dir=tmp_path, observers=tracking.observers([f"mlflow={uri}"], None, print)
    )
    (child,) = _mlflow_runs(client, m.data["id"])
    assert child.data.tags["mlflow.parentRunId"] == parent and child.info.experiment_id == exp


def test_mlflow_sync_is_idempotent_completes_a_partial_run_and_maps_statuses(store, tmp_path):
    uri, client = store
    run_dir = _run_dir(cli("run", "linreg", "export", "--runs-dir", str(tmp_path), "--set", "train.epochs=30"))
    full = manifest(run_dir)
    partial = json.loads(json.dumps(full))
    first = partial["stages"]["train"]["history"][0]  # what a tracker that died after the first row had sent
    partial["stages"]["train"].update(history=[first], metrics={"train_mse": first["train_mse"]})
    tracking.sync(f"mlflow={uri}", Manifest(run_dir, partial), "completed")
    proc = cli("runs", "sync", str(run_dir), "--to", f"mlflow={uri}", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"run": str(run_dir), "tracker": "mlflow", "status": "completed"}
    tracking.sync(f"mlflow={uri}", Manifest(run_dir, full), "completed")  # a second sync adds nothing
    (found,) = _mlflow_runs(client, full["id"])
    history = client.get_metric_history(found.info.run_id, "train_mse")
    assert [(h.step, h.value) for h in history] == _history(full, "train_mse")
    assert found.info.status == "FINISHED" and "export/model.json" in _artifacts(client, found.info.run_id)
    assert found.data.params == _expected_params(full)

    for status, expected in (("interrupted", "KILLED"), ("running", "KILLED"), ("failed", "FAILED")):
        other = tmp_path / "linreg" / f"copy-{status}"
        shutil.copytree(run_dir, other)
        data = {**full, "id": other.name, "status": status}
        atomic_write_json(other / "run.json", data)
        row = read(other).row
        tracking.sync(f"mlflow={uri}", Manifest(other, data), row["status"])
        (synced,) = _mlflow_runs(client, other.name)
        assert synced.info.status == expected, status  # 'running' without its lock holder: killed

    with run_lock(run_dir):
        assert "still running" in one_line_error(cli("runs", "sync", str(run_dir), "--to", f"mlflow={uri}"))


def test_mlflow_server_down_is_one_warning_and_the_run_goes_on(tmp_path):
    pytest.importorskip("mlflow")
    with socket.socket() as s:  # a port nothing listens on: bound, then closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = cli("run", "linreg", "export", "--runs-dir", str(tmp_path), "--set", "train.epochs=20",
               "--track", f"mlflow=http://127.0.0.1:{port}", timeout=240)  # fmt: skip
    run_dir = _run_dir(proc)
    assert manifest(run_dir)["status"] == "completed"
    warned = [ln for ln in proc.stderr.splitlines() if "warning" in ln.lower() or "retry" in ln.lower()]
    assert len(warned) == 1 and warned[0].startswith("warning: tracker mlflow stopped"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_from_continuation_goes_on_in_the_same_mlflow_run(store, tmp_path):
    uri, client = store
    first = run(Registry(), "linreg", "train", runs_dir=tmp_path, overrides=["train.epochs=30"],
                observers=tracking.observers([f"mlflow={uri}"], None, print))  # fmt: skip
    again = run(Registry(), "linreg", "export", from_dir=first.run_dir,
                observers=tracking.observers([f"mlflow={uri}"], None, print))  # fmt: skip
    (found,) = _mlflow_runs(client, first.data["id"])
    history = client.get_metric_history(found.info.run_id, "train_mse")
    assert [(h.step, h.value) for h in history] == _history(again.data, "train_mse")
    assert found.info.status == "FINISHED" and "export/model.json" in _artifacts(client, found.info.run_id)


def test_mlflow_http_settings_are_set_only_where_the_user_set_none(monkeypatch):
    pytest.importorskip("mlflow")
    from mlx_core.tracking.mlflow import HTTP_DEFAULTS, MlflowTracker

    for name in HTTP_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "33")
    MlflowTracker("http://127.0.0.1:9")._connect()  # connects to nothing yet
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "33"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"


def test_tensorboard_events_are_readable_while_the_run_goes(tmp_path):
    pytest.importorskip("tensorboard")
    from mlx_core.tracking.tensorboard import TensorBoardTracker

    class M:
        run_dir, data = tmp_path, {"stages": {}}

    tb = TensorBoardTracker.create(None)
    tb.start(M())
    tb.metrics("train", {"loss": 0.5}, 1)
    assert _scalars(tmp_path / "tensorboard") == {"loss": [(1, 0.5)]}  # before the end: flushed at each call
    tb.end(M(), "completed")


def test_plugins_of_the_mlx_group_may_publish_trackers_too():
    import types

    from mlx_core import hookimpl

    mod = types.ModuleType("with_tracker")
    mod.mlx_trackers = hookimpl(lambda: {"custom": lambda value: object()})
    reg = Registry(load=False)
    reg.pm.register(mod, name="with_tracker")
    factories, _ = tracking.discover(reg)
    assert "custom" in factories and "mlflow" in factories
