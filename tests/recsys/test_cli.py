"""End to end through the CLI (the shared 2-process run): generated data, plan, export, predict."""

import json

import torch

from .conftest import mlx


def test_run_learns_and_exports(trained_run):
    run_dir, m = trained_run
    assert all(m["stages"][s]["status"] == "completed" for s in ("data", "model", "train", "export"))
    hist = m["stages"]["train"]["history"]
    assert [h["step"] for h in hist] == [1, 2]
    assert m["records"]["trained"] is True
    # the generated log's hidden preferences are learnable: well above chance
    assert m["metrics"]["val_auc"] > 0.65, m["metrics"]
    assert m["metrics"]["val_ne"] < 1.0
    # the plan is printed and saved
    plan = json.loads((run_dir / "train" / "plan.json").read_text())
    assert set(plan) == {"product_table", "user_table", "category_table"}
    assert (run_dir / "train" / "plan.txt").read_text().count("table") >= 3
    assert m["records"]["sharding_plan"] == plan
    # checkpoint: a dict of tensors/ints that loads with weights_only
    ck = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert ck["epoch"] == 1 and ck["model"][
        "sparse_arch.embedding_bag_collection.embedding_bags.user_table.weight"
    ].shape == (256, 8)
    kinds = {a["kind"] for a in m["artifacts"]}
    assert {"dataset", "checkpoint", "sharding_plan", "plot", "model"} <= kinds


def test_export_int8_close_to_float_and_smaller(trained_run):
    run_dir, m = trained_run
    ex = m["stages"]["export"]["metrics"]
    assert abs(ex["auc_diff"]) < 0.01
    assert ex["int8_auc"] > 0.65
    assert ex["table_size_ratio"] > 1.3  # dim 8: 32 B float rows vs 8 B + scale/bias, padded


def test_export_reloads_without_training_code(trained_run, tmp_path):
    run_dir, _ = trained_run
    code = f"""
import sys, torch, fbgemm_gpu
m = torch.jit.load({str(run_dir / "export" / "model_int8.pt")!r})
dense = torch.zeros(3, 13); lengths = torch.tensor([1, 0, 2] + [1, 1, 1] + [0, 0, 0] + [1, 1, 1])
values = torch.arange(int(lengths.sum()))
p = m(dense, values, lengths)
assert p.shape == (3,) and bool(((p > 0) & (p < 1)).all())
print(sorted(k for k in ('torchrec', 'mlx_recsys') if k in sys.modules))
"""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def held_out_lines(run_dir, m, n):
    """The first ``n`` lines of the run's held-out split (the generated log has no bad lines, so
    the split's example index is the line index): rows the model never trained on."""
    from mlx_recsys.data import is_val

    lines = (run_dir / "data" / "clicks.tsv").read_text().splitlines()
    val = [line for i, line in enumerate(lines) if is_val(i, m["config"]["data"]["val_fraction"])]
    assert len(val) >= n and len(val) < len(lines) / 2
    return val[:n]


def test_predict_scores_a_tsv(trained_run, tmp_path):
    run_dir, m = trained_run
    src = held_out_lines(run_dir, m, 300)
    labeled = tmp_path / "some.tsv"
    labeled.write_text("\n".join(src) + "\n")
    unlabeled = tmp_path / "test.tsv"
    unlabeled.write_text("\n".join(line.split("\t", 1)[1] for line in src[:10]) + "\n")
    proc = mlx("predict", "recsys", str(run_dir), str(labeled), str(unlabeled), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout[proc.stdout.index("[") :])
    assert [r["examples"] for r in rows] == [300, 10]
    # AUC on held-out rows: the generalisation the validation AUC measures, not memorisation
    assert rows[0]["auc"] > 0.6 and "auc" not in rows[1]
    scores = [float(x) for x in open(rows[1]["scores"]).read().split()]
    assert len(scores) == 10 and all(0 < s < 1 for s in scores)
