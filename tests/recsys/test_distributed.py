"""Two gloo processes through torch.distributed's elastic launcher, with planner constraints."""

import json

from conftest import TINY, run_ok


def test_two_processes_row_and_column_wise(tmp_path):
    run_dir, m = run_ok(
        "train", tmp_path, *TINY, "train.nproc=2", "train.allow_oversubscribe=true", "train.epochs=2", "data.examples=6000",
        'train.sharding={product_table="row_wise",user_table=["column_wise"]}',
    )  # fmt: skip
    assert m["records"]["world_size"] == 2
    plan = json.loads((run_dir / "train" / "plan.json").read_text())
    assert plan["product_table"]["sharding_type"] == "row_wise"
    assert plan["product_table"]["ranks"] == [0, 1]
    assert [s["sizes"] for s in plan["product_table"]["shards"]] == [[256, 8], [256, 8]]
    assert plan["user_table"]["sharding_type"] == "column_wise"
    assert m["metrics"]["val_auc"] > 0.6, m["metrics"]
    hist = m["stages"]["train"]["history"]
    assert [h["step"] for h in hist] == [1, 2]
    assert hist[1]["train_loss"] < hist[0]["train_loss"]
