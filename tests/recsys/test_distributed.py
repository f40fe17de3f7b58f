"""Two gloo processes through torch.distributed's elastic launcher, with planner constraints
(the shared ``trained_run`` fixture is a 2-process run: see conftest.TWO_PROCESSES)."""

import json


def test_two_processes_follow_the_constraints(trained_run):
    run_dir, m = trained_run
    assert m["records"]["world_size"] == 2
    plan = json.loads((run_dir / "train" / "plan.json").read_text())
    assert plan["product_table"]["sharding_type"] == "row_wise"
    assert plan["product_table"]["ranks"] == [0, 1]
    assert [s["sizes"] for s in plan["product_table"]["shards"]] == [[256, 8], [256, 8]]
    assert plan["user_table"]["sharding_type"] == "column_wise"
    hist = m["stages"]["train"]["history"]
    assert [h["step"] for h in hist] == [1, 2]
    assert hist[1]["train_loss"] < hist[0]["train_loss"]
