"""The test-only fault points (mlx_core.faults): a raise lands exactly where, on which rank and
in which elastic attempt the environment says, and nowhere else."""

from __future__ import annotations

import pytest

from mlx_core import faults


@pytest.fixture
def clean(monkeypatch):
    for name in (faults.ENV, faults.RAISE_ENV, faults.RANK_ENV, faults.ATTEMPT_ENV, "RANK",
                 "TORCHELASTIC_RESTART_COUNT"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(faults.RAISE_ENV, "p:epoch_end:1")
    return monkeypatch


def test_a_raise_lands_only_at_its_point(clean):
    faults.kill_point("p:epoch_end:2")
    with pytest.raises(RuntimeError, match="test fault at p:epoch_end:1"):
        faults.kill_point("p:epoch_end:1")


def test_a_raise_lands_only_on_its_rank(clean):
    clean.setenv(faults.RANK_ENV, "1")
    clean.setenv("RANK", "0")
    faults.kill_point("p:epoch_end:1")
    clean.setenv("RANK", "1")
    with pytest.raises(RuntimeError):
        faults.kill_point("p:epoch_end:1")


def test_a_raise_lands_only_in_its_elastic_attempt(clean):
    clean.setenv(faults.ATTEMPT_ENV, "0")
    clean.setenv("TORCHELASTIC_RESTART_COUNT", "1")  # the restarted group gets past it
    faults.kill_point("p:epoch_end:1")
    clean.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    with pytest.raises(RuntimeError):
        faults.kill_point("p:epoch_end:1")
    clean.delenv("TORCHELASTIC_RESTART_COUNT")  # outside torchrun: attempt 0
    with pytest.raises(RuntimeError):
        faults.kill_point("p:epoch_end:1")
