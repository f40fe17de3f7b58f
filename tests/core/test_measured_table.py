"""The README's "Measured" table is what benchmarks/readme_table.py makes of the committed results."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    sys.path.insert(0, str(ROOT / "benchmarks"))  # readme_table and the benchmarks import goals
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_readme_block_is_generated_from_the_results_and_met_is_computed():
    readme_table, goals = _load("readme_table"), _load("goals")
    block = readme_table.table()
    readme = (ROOT / "README.md").read_text()
    assert block in readme, "README.md's Measured table is stale: run python benchmarks/readme_table.py"
    assert readme_table.with_table(readme, block) == readme
    rows = 0
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        for g in readme_table.goals_of(json.loads(path.read_text())):
            rows += 1
            # met follows from ratio and target (never typed), and a missed goal says why
            assert goals.goal(g["goal"], g["ratio"], g["target"])["met"] == g["met"], (path.name, g)
            assert g["met"] or g.get("reason"), (path.name, g)
    assert rows == block.count("\n| [")  # one table row per recorded goal
    assert "core: `mlx plugins list`" in block
