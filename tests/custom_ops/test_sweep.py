"""`mlx sweep custom_ops train` on the Paddle path: every trial a Paddle RedNet run in its own
process, the per-epoch val_acc (logged from Paddle's callback) reported to the pruner."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import MLX, TINY, sets

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
