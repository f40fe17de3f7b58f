"""mlx_torch.fit on a toy task, in process: early stopping, bf16, exact resume, Ignite's
checkpoints in the run directory. Two processes: tests/segmentation/test_engine.py (through the
core launcher; `python -m torch.distributed.run --standalone --nproc-per-node 2 -m tests.torch.toy
RUN OUT` runs this toy on two)."""

from __future__ import annotations

import json

import pytest

from .toy import toy_fit

torch = pytest.importorskip("torch")


class Killed(Exception):
    """Stands in for a kill after an epoch's checkpoint (the process dies; the run dir stays)."""


def stop_after(epoch: int):
    from ignite.engine import Events

    def attach(trainer, evaluator):
        @trainer.on(Events.EPOCH_COMPLETED(once=epoch))
        def _die(_):
            raise Killed

    return attach


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_bf16_and_checkpoints_of_one_run(tmp_path):
    # min_delta no metric can beat: epoch 1 sets the best, 2 and 3 do not improve, patience 2 stops after 3
    stop = {"metric": "val_accuracy", "mode": "max", "patience": 2, "min_delta": 10.0}
    ctx, result = toy_fit(tmp_path, epochs=10, precision="bf16", early_stopping=stop, keep_checkpoints=2,
                          lr_schedule="cosine", warmup_steps=3, grad_clip_norm=1.0, grad_accum_steps=2)  # fmt: skip
    assert result.stopped_early == 3
    assert [r["epoch"] for r in result.history] == [0, 1, 2, 3]
    m = json.loads((tmp_path / "run.json").read_text())
    assert m["records"]["engine"]["precision"] == "bf16"
    assert m["records"]["engine"]["stopped_early_after_epoch"] == 3
    assert m["records"]["engine"]["optimizer_steps"] == 3 * 4  # 8 batches an epoch, a step every 2
    assert [r["step"] for r in m["stages"]["train"]["history"]] == [0, 1, 2, 3]
    # Ignite's Checkpoint, n_saved=2, in the run directory, written atomically (no temporary left)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch-002.pt", "epoch-003.pt"]
    state = torch.load(tmp_path / "checkpoints" / "epoch-003.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "trainer", "rng", "history", "step", "early_stopping"} <= set(state)
    assert state["trainer"]["iteration"] == 3 * 8 and state["step"] == 12
    assert 0 < result.last["accuracy"] <= 1
    # the schedule is torch's: warm-up ramps the rate, the cosine takes it towards 0
    assert 0 < result.history[-1]["lr"] < 1e-2


def test_killed_after_an_epoch_then_resumed_ends_with_the_same_weights(tmp_path):
    _, clean = toy_fit(tmp_path / "clean", epochs=3)
    with pytest.raises(Killed):
        toy_fit(tmp_path / "killed", epochs=3, handlers=[stop_after(1)])
    assert sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir()) == ["epoch-001.pt"]
    ctx, resumed = toy_fit(tmp_path / "killed", epochs=3, resumed=True)
    assert resumed.resumed_from == 1
    assert "resuming from checkpoints/epoch-001.pt (epoch 1 of 3)" in ctx.console.file.getvalue()
    assert same(clean.model.state_dict(), resumed.model.state_dict())
    assert [r["train_loss"] for r in clean.history] == [r["train_loss"] for r in resumed.history]


def test_trainable_only_checkpoints_hold_the_adapters_and_resume_exactly(tmp_path, monkeypatch):
    # the first layer frozen, as a quantized base under LoRA adapters: checkpoints hold the rest
    _, clean = toy_fit(tmp_path / "clean", epochs=3, trainable_only=True)
    monkeypatch.setenv("MLX_TEST_RAISE", "toy:epoch_start:2")  # the engine's every-rank fault point
    with pytest.raises(RuntimeError, match="test fault at toy:epoch_start:2"):
        toy_fit(tmp_path / "killed", epochs=3, trainable_only=True)
    monkeypatch.delenv("MLX_TEST_RAISE")
    state = torch.load(tmp_path / "killed" / "checkpoints" / "epoch-001.pt", weights_only=True)
    assert sorted(state["model"]) == ["3.bias", "3.weight"]
    _, resumed = toy_fit(tmp_path / "killed", epochs=3, resumed=True, trainable_only=True)
    assert resumed.resumed_from == 1
    assert same(clean.model.state_dict(), resumed.model.state_dict())


def test_resume_with_another_epoch_length_continues_at_this_runs_length(tmp_path, monkeypatch):
    # a batch twice as large halves the batches an epoch, as a resume on twice the processes does
    monkeypatch.setenv("MLX_TEST_RAISE", "toy:epoch_start:2")
    with pytest.raises(RuntimeError):
        toy_fit(tmp_path, epochs=3)
    monkeypatch.delenv("MLX_TEST_RAISE")
    ctx, resumed = toy_fit(tmp_path, epochs=3, resumed=True, batch_size=16)
    assert [r["epoch"] for r in resumed.history] == [0, 1, 2, 3]
    m = json.loads((tmp_path / "run.json").read_text())
    assert m["records"]["engine"]["optimizer_steps"] == 8 + 2 * 4  # epoch 1: 64/8, then 64/16 each
    assert "the checkpoint's epochs had 8 batches a process; this run's have 4" in ctx.console.file.getvalue()
    # a checkpoint whose parameters are not the trainable ones of this model is one line
    from mlx_core import DataError

    with pytest.raises(DataError, match=r"does not fit .* unexpected \['0.bias', '0.weight'\]"):
        toy_fit(tmp_path, epochs=4, resumed=True, trainable_only=True)


def test_weights_digest_reads_bfloat16(tmp_path):
    from mlx_torch.dist import weights_sha256

    a = torch.nn.Linear(3, 2).to(torch.bfloat16)
    assert weights_sha256(a) == weights_sha256(a) and len(weights_sha256(a)) == 64
    b = torch.nn.Linear(3, 2)
    assert weights_sha256(b) != weights_sha256(b.to(torch.bfloat16))


def test_fp16_on_cpu_is_one_clear_error(tmp_path):
    from mlx_core import ConfigError

    with pytest.raises(ConfigError, match="train.precision=fp16 needs CUDA"):
        toy_fit(tmp_path, precision="fp16")


def test_warmup_fraction_is_a_share_of_the_run_and_a_handlers_terminate_is_not_early_stopping(tmp_path):
    from mlx_torch import schedules
    from mlx_torch.config import EngineTrainConfig
    from mlx_torch.fit import TrainEvents

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = schedules.build(EngineTrainConfig(lr_schedule="cosine", warmup_fraction=0.1), opt, 40)
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # 4 of 40 steps ramp linearly up to the peak (torch's LinearLR), then the cosine decays it
    assert lrs[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0]) and lrs[-1] < 0.01

    def stop_after_1(trainer, evaluator):  # as multimodal's train.max_minutes does
        @trainer.on(TrainEvents.EPOCH_LOGGED)
        def _stop(engine):
            if engine.state.epoch == 1:
                engine.terminate()

    stop = {"metric": "val_accuracy", "mode": "max", "patience": 3}
    _, result = toy_fit(tmp_path, epochs=3, early_stopping=stop, handlers=[stop_after_1])
    assert [r["epoch"] for r in result.history] == [0, 1] and result.stopped_early is None
