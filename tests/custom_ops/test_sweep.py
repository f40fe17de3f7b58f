"""`mlx sweep custom_ops train` on the Paddle path: every trial a Paddle RedNet run in its own
process, the per-epoch val_acc (logged from Paddle's callback) reported to the pruner."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mlx_core.testing import sets

from .conftest import MLX, TINY

optuna = pytest.importorskip("optuna", reason="mlx sweep needs the mlx-core[sweep] extra")


@pytest.mark.slow
def test_two_trial_sweep_of_the_paddle_path(tmp_path):
    pytest.importorskip("paddle")
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [*MLX, "sweep", "custom_ops", "train", "--trials", "2", "--metric", "val_acc", "--direction", "maximize",
         "--space", "train.lr=loguniform(0.01,0.1)", "--sampler", "random", "--seed", "0", "--runs-dir", str(runs),
         "--device", "cpu", *sets(*TINY, "model.backend=paddle", "model.impl=composite")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="custom_ops-train-val_acc", storage=f"sqlite:///{runs}/sweeps.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for t in study.trials:
        m = json.loads((Path(t.user_attrs["run_dir"]) / "run.json").read_text())
        assert m["config"]["model"]["backend"] == "paddle" and m["versions"].get("paddle")
        assert m["config"]["train"]["lr"] == t.params["train.lr"]
        assert t.value == m["metrics"]["val_acc"] and m["records"]["sweep"]["trial"] == t.number
        assert t.intermediate_values == {1: m["stages"]["train"]["history"][-1]["val_acc"]}


@pytest.mark.slow
def test_pruning_stops_a_paddle_run_from_inside_its_callback(tmp_path):
    """Two finished trials with an impossible val_acc of 2.0 at epoch 1 make the median pruner
    prune the next trial at its first epoch, whatever it scores: Pruned raised in Paddle's
    callback must stop the run and be recorded."""
    pytest.importorskip("paddle")
    runs = tmp_path / "runs"
    runs.mkdir()
    storage = f"sqlite:///{runs}/sweeps.db"
    study = optuna.create_study(study_name="pruned", storage=storage, direction="maximize")
    dist = optuna.distributions.FloatDistribution(0.01, 0.1, log=True)
    for _ in range(2):
        study.add_trial(optuna.trial.create_trial(params={"train.lr": 0.05}, distributions={"train.lr": dist},
                                                  value=2.0, intermediate_values={1: 2.0}))  # fmt: skip
    proc = subprocess.run(
        [*MLX, "sweep", "custom_ops", "train", "--trials", "3", "--metric", "val_acc", "--direction", "maximize",
         "--study", "pruned", "--prune-after", "2", "--space", "train.lr=loguniform(0.01,0.1)",
         "--runs-dir", str(runs), "--device", "cpu", *sets(*TINY, "model.backend=paddle", "model.impl=composite")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    trial = optuna.load_study(study_name="pruned", storage=storage).trials[2]
    assert trial.state.name == "PRUNED" and list(trial.intermediate_values) == [1]
    m = json.loads((Path(trial.user_attrs["run_dir"]) / "run.json").read_text())
    assert m["status"] == "pruned" and m["stages"]["train"]["status"] == "pruned"
    assert "pruned at step 1" in m["stages"]["train"]["error"]
