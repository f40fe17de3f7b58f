"""`mlx sweep translation train`: a Hugging Face Seq2SeqTrainer plugin tuned by Optuna, every trial
its own `mlx run` process (nothing pickled), the per-epoch eval_loss reported to the pruner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlx_core.testing import cli

from .conftest import TINY, device, sets

optuna = pytest.importorskip("optuna", reason="mlx sweep needs the mlx-core[sweep] extra")


@pytest.mark.slow
def test_two_trial_sweep_of_the_trainer_plugin(tmp_path):
    runs = tmp_path / "runs"
    proc = cli("sweep", "translation", "train", "--trials", "2", "--metric", "eval_loss", "--direction", "minimize",
               "--space", "train.learning_rate=loguniform(1e-3,1e-2)", "--sampler", "random", "--seed", "0",
               "--runs-dir", str(runs), "--device", device(), *sets(*TINY))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="translation-train-eval_loss", storage=f"sqlite:///{runs}/sweeps.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for t in study.trials:
        m = json.loads((Path(t.user_attrs["run_dir"]) / "run.json").read_text())
        assert m["config"]["train"]["learning_rate"] == t.params["train.learning_rate"]
        assert t.value == m["metrics"]["eval_loss"] and m["records"]["sweep"]["trial"] == t.number
        # the Trainer's per-epoch evaluation reached the trial through ctx.log_metrics(step=epoch)
        assert t.intermediate_values == {1: m["stages"]["train"]["history"][-1]["eval_loss"]}
    assert (runs / "sweeps" / "translation-train-eval_loss" / "best.toml").is_file()


@pytest.mark.slow
def test_pruning_stops_the_trainer_after_its_first_epoch(tmp_path):
    """Two finished trials with an impossible eval_loss of -1 at epoch 1 make the median pruner
    prune the next trial at its first epoch: Pruned raised in the Trainer's callback stops the
    2-epoch run there and is recorded."""
    runs = tmp_path / "runs"
    runs.mkdir()
    storage = f"sqlite:///{runs}/sweeps.db"
    study = optuna.create_study(study_name="pruned", storage=storage, direction="minimize")
    dist = optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True)
    for _ in range(2):
        study.add_trial(optuna.trial.create_trial(params={"train.learning_rate": 0.005},
                        distributions={"train.learning_rate": dist}, value=-1.0, intermediate_values={1: -1.0}))  # fmt: skip
    proc = cli("sweep", "translation", "train", "--trials", "3", "--metric", "eval_loss", "--direction", "minimize",
               "--study", "pruned", "--prune-after", "2", "--space", "train.learning_rate=loguniform(1e-3,1e-2)",
               "--runs-dir", str(runs), "--device", device(), *sets(*TINY, "train.epochs=2"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    trial = optuna.load_study(study_name="pruned", storage=storage).trials[2]
    assert trial.state.name == "PRUNED" and list(trial.intermediate_values) == [1]
    m = json.loads((Path(trial.user_attrs["run_dir"]) / "run.json").read_text())
    assert m["status"] == "pruned" and m["stages"]["train"]["status"] == "pruned"
    assert [h["step"] for h in m["stages"]["train"]["history"]] == [1]  # epoch 2 never ran
