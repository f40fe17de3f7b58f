"""The built-in MLflow tracker (``--track mlflow[=URI]``), an ``mlx.trackers`` entry point.

Needs ``pip install 'mlx-core[mlflow]'`` (mlflow-skinny, plus SQLAlchemy and Alembic for a
``sqlite:///`` store). The URI is any MLflow tracking URI; without one, MLflow's own default
(``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the working directory). An experiment
mlx creates in a ``sqlite:///PATH`` store keeps its artifacts in ``mlartifacts/`` next to the
database file (MLflow's own default, ``./mlruns``, would scatter them over whatever directory each
run happened to start in).

One MLflow run per mlx run, found again by its tag ``mlx.run_id``: a ``--from`` continuation
and ``mlx runs sync`` add what the MLflow run lacks (params, metric points, artifacts) instead
of creating a second one. Experiment: ``MLFLOW_EXPERIMENT_NAME``, else the plugin's name; with
``MLX_TRACK_PARENT_RUN_ID`` set (a sweep), the run is nested under that parent run, in its
experiment. mlflow is imported only when a run starts being tracked.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from ..hookspecs import hookimpl
from . import STATUS, Series

#: the mlx run id tag: how a continuation or a sync finds the MLflow run again
RUN_TAG = "mlx.run_id"
PARENT_ENV = "MLX_TRACK_PARENT_RUN_ID"
# MLflow retries an unreachable HTTP server for minutes by default (5 retries, backoff 2,
# 120 s timeout); a tracker must give up fast and let the run go on. The user's values win.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
PARAM_LIMIT = 6000  # MLflow's longest param value
_BAD_KEY = re.compile(r"[^\w\-./ ]")


@hookimpl
def mlx_trackers() -> dict[str, Any]:
    return {"mlflow": MlflowTracker.create}


def _ms(iso: str | None) -> int | None:
    try:
        return int(_dt.datetime.fromisoformat(str(iso)).timestamp() * 1000)
    except ValueError:
        return None


def _key(name: str) -> str:
    return _BAD_KEY.sub("_", str(name))


def artifact_location(uri: str | None) -> str | None:
    """``file:`` URI of ``mlartifacts/`` next to a ``sqlite:///PATH`` store's database file; None
    for any other store (its own default applies)."""
    if not uri or not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return (Path(path).resolve().parent / "mlartifacts").as_uri()


def params(data: dict[str, Any]) -> dict[str, str]:
    """The resolved config (and cross-cutting options) as flat MLflow params: ``train.epochs``."""
    from ..runsdb import flatten

    flat = {**flatten(data.get("config") or {}), **flatten(data.get("options") or {})}
    return {_key(k): (v if isinstance(v, str) else json.dumps(v))[:PARAM_LIMIT] for k, v in flat.items()}


class MlflowTracker:
    """A ``RunObserver`` that mirrors one mlx run into one MLflow run."""

    def __init__(self, uri: str | None) -> None:
        self.uri = uri
        self.client: Any = None
        self.run_id: str | None = None
        self.series = Series()
        self.replaying = False  # under `mlx runs sync`: the run's own end time, not now

    @classmethod
    def create(cls, value: str | None) -> MlflowTracker:
        from ..errors import UsageError

        if importlib.util.find_spec("mlflow") is None:
            raise UsageError("--track mlflow needs the MLflow client: pip install 'mlx-core[mlflow]'")
        return cls(value)

    # --- connection ------------------------------------------------------------------------
    def _connect(self) -> None:
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        from mlflow import MlflowClient

        # MLflow's INFO lines (database migrations) and urllib3's retry warnings would interleave
        # with the run's log; what matters reaches the user as the tracker's one warning.
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        logging.getLogger("urllib3").setLevel(logging.ERROR)
        self.client = MlflowClient(tracking_uri=self.uri)

    def _find(self, run_id: str) -> Any:
        if "'" in run_id or "\\" in run_id:
            return None  # not a name MLflow's filter syntax can quote; such a run is not looked up
        ids = [e.experiment_id for e in self.client.search_experiments()]
        if not ids:
            return None
        found = self.client.search_runs(ids, filter_string=f"tags.`{RUN_TAG}` = '{run_id}'", max_results=1)
        return found[0] if found else None

    def _experiment(self, data: dict[str, Any], parent: str | None) -> str:
        if parent:
            return self.client.get_run(parent).info.experiment_id
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or str(data.get("plugin", "mlx"))
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        try:
            return self.client.create_experiment(
                name, artifact_location=artifact_location(self.uri or os.environ.get("MLFLOW_TRACKING_URI"))
            )
        except Exception:
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    # --- RunObserver -------------------------------------------------------------------------
    def start(self, manifest: Any) -> None:
        from mlflow.entities import Param, RunTag

        self._connect()
        data = manifest.data
        found = self._find(str(data["id"]))
        if found is None:
            parent = os.environ.get(PARENT_ENV) or None
            tags = {
                RUN_TAG: str(data["id"]),
                "mlx.plugin": str(data.get("plugin")),
                "mlx.run_dir": str(manifest.run_dir),
            }
            if parent:
                tags["mlflow.parentRunId"] = parent
            run = self.client.create_run(
                self._experiment(data, parent), start_time=_ms(data.get("created")), tags=tags, run_name=str(data["id"])
            )
            have: dict[str, str] = {}
        else:
            run = found
            self.client.update_run(run.info.run_id, status="RUNNING")
            have = dict(run.data.params)
        self.run_id = run.info.run_id
        # MLflow params are immutable: a continuation with a changed --set keeps the first value
        todo = [Param(k, v) for k, v in params(data).items() if k not in have]
        for i in range(0, len(todo), 100):
            self.client.log_batch(self.run_id, params=todo[i : i + 100])
        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in self._tags(data).items()])
        self._catch_up(self.series.replay(data), fresh=found is None)

    def metrics(self, stage: str, metrics: dict[str, Any], step: int | None) -> None:
        self._log(self.series.points(metrics, step))

    def end(self, manifest: Any, status: str) -> None:
        from mlflow.entities import RunTag

        data = manifest.data
        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in self._tags(data, status).items()])
        self._artifacts(manifest)
        end = _ms(data.get("updated")) if self.replaying else None
        self.client.set_terminated(self.run_id, status=STATUS.get(status, "FAILED"), end_time=end)

    def sync(self, manifest: Any, status: str) -> None:
        """``mlx runs sync``: create or complete the MLflow run of a finished run (idempotent)."""
        self.replaying = True
        self.start(manifest)
        self.end(manifest, status)

    # --- helpers ---------------------------------------------------------------------------
    def _tags(self, data: dict[str, Any], status: str | None = None) -> dict[str, str]:
        tags = {f"mlx.version.{_key(k)}": str(v) for k, v in (data.get("versions") or {}).items()}
        tags["mlx.device"] = str(data.get("device"))
        if status is not None:
            tags["mlx.status"] = status
        return tags

    def _log(self, points: list[tuple[str, int, float]], base_ms: int | None = None) -> None:
        from mlflow.entities import Metric

        now = base_ms if base_ms is not None else int(time.time() * 1000)
        batch = [
            Metric(_key(k), v, now + (i if base_ms is not None else 0), step) for i, (k, step, v) in enumerate(points)
        ]
        for i in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[i : i + 1000])

    def _catch_up(self, points: list[tuple[str, int, float]], fresh: bool) -> None:
        """Log the points the MLflow run lacks: all of them for a new run; for one found again,
        those past the number it already holds of each key (its history is a prefix of ours)."""
        if not points:
            return
        if not fresh:
            held: dict[str, int] = {}
            todo = []
            for k, step, v in points:
                key = _key(k)
                if key not in held:
                    held[key] = len(self.client.get_metric_history(self.run_id, key))
                if held[key] > 0:
                    held[key] -= 1
                else:
                    todo.append((k, step, v))
            points = todo
        self._log(points, base_ms=int(time.time() * 1000) - len(points))

    def _artifacts(self, manifest: Any) -> None:
        """Every artifact of the run inside its folder (where run.json says it is), and run.json;
        a file already there with the same size is not sent again."""
        root = Path(manifest.run_dir).resolve()
        present = self._listing("")
        for art in manifest.data.get("artifacts", []):
            path = (root / str(art.get("path", ""))).resolve()
            if root not in path.parents or not path.is_file():
                continue  # outside the run folder, or gone (mlx runs verify names it)
            rel = path.relative_to(root).as_posix()
            if present.get(rel) == path.stat().st_size:
                continue
            parent = os.path.dirname(rel)
            self.client.log_artifact(self.run_id, str(path), artifact_path=parent or None)
        self.client.log_artifact(self.run_id, str(root / "run.json"))

    def _listing(self, folder: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for info in self.client.list_artifacts(self.run_id, folder or None):
            if info.is_dir:
                out.update(self._listing(info.path))
            else:
                out[info.path] = info.file_size
        return out
