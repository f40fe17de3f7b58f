"""recsys's stage functions, named in its stage table (torch and torchrec imported inside)."""

from __future__ import annotations

from .config import check


def data(ctx):
    check(ctx.config)
    from .data import prepare

    return prepare(ctx)


def model(ctx, data):
    check(ctx.config)
    from .model import build_dlrm, describe

    model = build_dlrm(ctx.config, sparse_device="meta")  # tables stay on meta until sharded
    info = describe(model)
    rows = sum(t.num_embeddings for t in ctx.config.model.tables)
    ctx.record("model", {"tables": [t.model_dump() for t in ctx.config.model.tables], "table_rows": rows, **info})
    ctx.record("trained", False)
    return {"config": ctx.config, "dense_parameters": info["dense_parameters"]}


def train(ctx, data, model):
    check(ctx.config)
    from .train import CKPT, launch

    cfg = ctx.config
    if ctx.device != "cpu":
        ctx.note(
            f"train: runs on CPU with gloo even with --device {ctx.device} (the NCCL/GPU path is not implemented yet)"
        )
    resume = ctx.resumed and ctx.path(*CKPT).exists()
    advance = None
    total = None
    world = ctx.dist.world_size
    with ctx.progress(f"training ({world} process{'es' if world > 1 else ''})", total) as adv:
        if ctx.dist.is_main:
            advance = adv
        result = launch(cfg, data, ctx.run_dir, resume, advance)
    if not ctx.dist.is_main:  # rank 0 records, plots and keeps the checkpoint
        return {"checkpoint": None}
    ctx.record_ranks(result["ranks"])
    ctx.record("sharding_plan", result["plan"])
    ctx.record("world_size", result["world_size"])
    for name in ("plan.txt", "plan.json"):
        ctx.add_artifact(ctx.path("train", name), kind="sharding_plan")
    ctx.log(
        f"sharding plan ({result['world_size']} process{'es' if result['world_size'] > 1 else ''}) saved to train/plan.txt"
    )
    # the manifest keeps the history rows of an earlier (interrupted) invocation under --from
    logged = {r.get("step") for r in ctx.manifest.stage("train").get("history", [])}
    for row in result["history"]:
        if row["epoch"] not in logged:
            ctx.manifest.log_metrics("train", {k: v for k, v in row.items() if k != "epoch"}, row["epoch"])
    if resume:
        what = (
            "weights, dense Adam and fused sparse optimizer state"
            if result.get("restored_sparse_opt")
            else "weights and dense Adam state"
        )
        ctx.note(f"train: resumed from checkpoints/last.pt ({what})")
    final = result["history"][-1]
    ctx.log_metrics({"val_auc": final["val_auc"], "val_ne": final["val_ne"], "train_loss": final["train_loss"],
                     "examples_per_s": final["examples_per_s"]})  # fmt: skip
    ckpt = ctx.path(*CKPT)
    ctx.add_artifact(ckpt, kind="checkpoint", epoch=final["epoch"])
    _plot(ctx, result["history"])
    ctx.record("trained", True)
    return {"checkpoint": str(ckpt), "history": result["history"]}


def _plot(ctx, history):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot(ep, [r["train_loss"] for r in history], "o-", label="train loss")
    ax[0].plot(ep, [r["val_logloss"] for r in history], "o-", label="val logloss")
    ax[0].set_xlabel("epoch")
    ax[0].legend()
    ax[1].plot(ep, [r["val_auc"] for r in history], "o-", label="val AUC")
    ax[1].plot(ep, [r["val_ne"] for r in history], "o-", label="val NE")
    ax[1].set_xlabel("epoch")
    ax[1].legend()
    fig.tight_layout()
    with ctx.atomic_path("train", "curves.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    ctx.add_artifact(ctx.path("train", "curves.png"), kind="plot")


def export(ctx, data, model):
    from pathlib import Path

    from mlx_core import RunError

    from .export import export
    from .train import CKPT

    ckpt = Path(model["checkpoint"]) if model and model.get("checkpoint") else ctx.path(*CKPT)
    if not ckpt.exists():
        raise RunError(f"no checkpoint at {ckpt}: run the train stage first")
    return export(ctx, data, ckpt)


def predict(ctx, inputs):
    from .predict import predict

    return predict(ctx, inputs)


def serve(ctx, format=None):
    from .serve import serve

    return serve(ctx, format=format)
