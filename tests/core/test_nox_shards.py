"""noxfile's shards (``MLX_NOX_SHARD=K/N nox``, what ``.ci/run`` starts at once): every default
session runs in exactly one shard, and the shards' expected minutes are balanced."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nox")
ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("mlx_noxfile_shards", ROOT / "noxfile.py")
noxfile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(noxfile)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_every_default_session_is_in_exactly_one_shard(n):
    names = noxfile.default_sessions()
    assert "integration" in names and "core" in names and "bench" not in names
    shards = [noxfile.shard(names, f"{k}/{n}") for k in range(1, n + 1)]
    assert sorted(s for sh in shards for s in sh) == sorted(names)
    for sh in shards:  # the declaration order within a shard (lint first where it is)
        assert sh == [s for s in names if s in sh]


def test_shards_are_balanced_within_the_longest_session():
    names = noxfile.default_sessions()
    loads = [sum(noxfile.minutes(s) for s in noxfile.shard(names, f"{k}/2")) for k in (1, 2)]
    assert abs(loads[0] - loads[1]) <= max(noxfile.minutes(s) for s in names)


@pytest.mark.parametrize("spec", ["2", "0/2", "3/2", "a/b"])
def test_a_bad_shard_is_one_line(spec):
    proc = subprocess.run([sys.executable, "-m", "nox", "-l", "-f", str(ROOT / "noxfile.py")], capture_output=True,
                          text=True, env={**os.environ, "MLX_NOX_SHARD": spec})  # fmt: skip
    assert proc.returncode != 0
    assert f"MLX_NOX_SHARD={spec!r}: expected K/N with 1 <= K <= N" in proc.stderr


def test_a_shard_lists_only_its_sessions():
    proc = subprocess.run([sys.executable, "-m", "nox", "-l", "-f", str(ROOT / "noxfile.py")], capture_output=True,
                          text=True, env={**os.environ, "MLX_NOX_SHARD": "1/2"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    selected = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("* ")}
    assert selected == set(noxfile.shard(noxfile.default_sessions(), "1/2"))
