"""custom_ops' torch RedNet under the core launcher when things go wrong (issue 15): a rank that
raises, a worker killed then resumed with one process, two nodes on loopback. The scenarios are
mlx_core.testing_launch's, shared by every plugin that distributes (segmentation also runs the elastic restart);
the faults are deterministic (mlx_core.faults at the engine's ``custom_ops:epoch_end:E``)."""

from __future__ import annotations

import pytest

from mlx_core.testing_launch import (
    assert_a_killed_worker_resumes_with_one_process,
    assert_a_raising_rank_ends_the_job,
    assert_two_nodes_on_loopback_form_one_job,
)

from .conftest import TINY

pytestmark = pytest.mark.slow
TORCH = [*TINY, "model.backend=torch", "model.impl=composite"]


def test_a_raising_rank_ends_the_job_in_one_line(tmp_path):
    assert_a_raising_rank_ends_the_job("custom_ops", tmp_path, TORCH)


def test_a_killed_worker_resumes_with_one_process(tmp_path):
    assert_a_killed_worker_resumes_with_one_process("custom_ops", tmp_path, TORCH)


def test_two_nodes_on_loopback_form_one_job(tmp_path):
    assert_two_nodes_on_loopback_form_one_job("custom_ops", tmp_path, TORCH)
