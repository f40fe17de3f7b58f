"""A real plugin's run tracked in MLflow, listed beside other plugins' runs and reported (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlx_core.runsdb import flatten
from mlx_core.testing import cli

# the segmentation tests' tiny config, with 2 epochs so that every curve has a line
SEGMENTATION = ["data.image_size=32", "data.sample_train=8", "data.sample_val=4", "train.batch_size=4",
                "train.epochs=2", "export.formats=[\"onnx\"]"]  # fmt: skip
# a cheap data stage of another plugin, when it is installed (every plugin is, in nox -s integration)
NEIGHBOURS = {
    "custom_ops": ["data.image_size=32", "data.sample_classes=2", "data.sample_per_class=8",
                   "data.sample_valid_per_class=4"],
}  # fmt: skip


def sets(overrides: list[str]) -> list[str]:
    return [x for o in overrides for x in ("--set", o)]


def installed() -> set[str]:
    return {r["name"] for r in json.loads(cli("plugins", "list", "--json").stdout) if r["status"] == "ok"}


def test_segmentation_run_tracked_in_mlflow_listed_and_reported(tmp_path):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlflow import MlflowClient

    if "segmentation" not in installed():
        pytest.skip("segmentation is not installed")
    runs, uri = tmp_path / "runs", f"sqlite:///{tmp_path}/mlflow.db"
    proc = cli("run", "segmentation", "export", "--runs-dir", str(runs), "--device", "cpu", *sets(SEGMENTATION),
               "--track", f"mlflow={uri}", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "warning: tracker" not in proc.stderr, proc.stderr[-4000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    data = json.loads((run_dir / "run.json").read_text())

    client = MlflowClient(tracking_uri=uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    (found,) = client.search_runs(ids, filter_string=f"tags.`mlx.run_id` = '{data['id']}'")
    assert found.info.status == "FINISHED"
    flat = {**flatten(data["config"]), **flatten(data["options"])}
    assert found.data.params == {k: v if isinstance(v, str) else json.dumps(v) for k, v in flat.items()}
    rows = data["stages"]["train"]["history"]
    for key in ("train_loss", "val_loss", "val_miou", "val_pixel_acc", "lr"):
        history = [(m.step, m.value) for m in client.get_metric_history(found.info.run_id, key)]
        assert history == [(r["step"], r[key]) for r in rows if key in r], key
    assert found.data.tags["mlx.version.torch"] == data["versions"]["torch"]
    logged: set[str] = set()
    folders = [None]
    while folders:
        for info in client.list_artifacts(found.info.run_id, folders.pop()):
            folders.append(info.path) if info.is_dir else logged.add(info.path)
    assert {a["path"] for a in data["artifacts"]} | {"run.json"} <= logged
    # a sqlite store's artifacts lie next to its database, not in ./mlruns (docs/runs.md)
    assert (tmp_path / "mlartifacts").is_dir() and not (tmp_path / "mlruns").exists()
    assert found.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())

    for name in sorted(set(NEIGHBOURS) & installed()):
        other = cli("run", name, "data", "--runs-dir", str(runs), "--device", "cpu", *sets(NEIGHBOURS[name]))
        assert other.returncode == 0, other.stderr[-4000:]
    listed = json.loads(cli("runs", "list", "--runs-dir", str(runs), "--json").stdout)
    assert {r["plugin"] for r in listed} == {"segmentation"} | (set(NEIGHBOURS) & installed())
    row = next(r for r in listed if r["plugin"] == "segmentation")
    assert row["status"] == "completed" and row["parity"].startswith("ok") and "val_miou" in row["headline"]

    report = tmp_path / "report.html"
    assert cli("runs", "report", str(run_dir), "-o", str(report)).returncode == 0
    page = report.read_text()
    assert page.count("<svg") >= 5 and "val_miou" in page and "model.onnx" in page
    assert cli("runs", "verify", str(run_dir)).returncode == 0
