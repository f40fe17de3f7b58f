"""Test kit of the engine's plugins: what every ``mlx run PLUGIN train --nproc N`` on mlx-torch
must leave behind, asserted in one place so each plugin's DDP test checks the same rank discipline."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def assert_one_ddp_job(m: dict[str, Any], run_dir: Path, nproc: int = 2) -> None:
    """One job of ``nproc`` gloo ranks: the engine and the launch record that world size, every
    rank trained (samples/s > 0) and ended with the same weights, rank 0 alone wrote run.json, and
    every rank wrote its log."""
    engine = m["records"]["engine"]
    assert (engine["world_size"], engine["backend"]) == (nproc, "gloo")
    assert m["launch"]["world_size"] == nproc and m["launch"]["nproc"] == nproc
    ranks = m["launch"]["ranks"]
    assert [r["rank"] for r in ranks] == list(range(nproc)) and all(r["samples_per_s"] > 0 for r in ranks)
    assert len({r["weights_sha256"] for r in ranks}) == 1
    assert list(run_dir.rglob("run.json")) == [run_dir / "run.json"]
    assert sorted(p.name for p in (run_dir / "logs").glob("rank-*.log")) == [f"rank-{k}.log" for k in range(nproc)]
