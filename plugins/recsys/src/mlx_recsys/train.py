"""DistributedModelParallel training on CPU with gloo: 1 process in-process, N through the
elastic launcher. Rank 0 gathers the full tables each epoch, evaluates AUC / normalized entropy
on the held-out split with an unsharded copy, and writes the checkpoint."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlx_core import ConfigError, atomic_path, atomic_write, atomic_write_json
from mlx_core.dist import DistInfo
from mlx_core.faults import kill_point

from .config import RecsysConfig, check

CKPT = ("checkpoints", "last.pt")


def launch(
    cfg: RecsysConfig, spec: dict[str, Any], run_dir: Path, resume: bool, advance: Callable | None = None
) -> dict[str, Any]:
    """Train in this process: one rank of the job `mlx run recsys train --nproc N` started
    (torchrun's environment: RANK, WORLD_SIZE, MASTER_ADDR, ...), or alone as a one-rank gloo
    group. Returns this rank's result (rank 0's holds the history)."""
    check(cfg)
    job = {"config": cfg.model_dump(mode="json"), "spec": spec, "run_dir": str(run_dir), "resume": resume}
    if "WORLD_SIZE" in os.environ:
        return worker(job, advance)
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}  # fmt: skip
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return worker(job, advance)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quiet() -> None:
    """Silence torchrec/torch deprecation chatter that is not actionable by the user."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torchrec")
    for name in ("torchrec.distributed.planner", "torch.fx._symbolic_trace"):
        logging.getLogger(name).setLevel(logging.ERROR)


def worker(job: dict[str, Any], advance: Callable | None = None) -> dict[str, Any]:
    _quiet()
    import torch
    import torch.distributed as dist

    cfg = RecsysConfig.model_validate(job["config"])
    spec, run_dir = job["spec"], Path(job["run_dir"])
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    threads = cfg.train.threads or max(1, (os.cpu_count() or 1) // local_world)
    torch.set_num_threads(threads)
    # a peer that died ends this rank's collectives after the launcher's timeout, not torch's 30 min
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=DistInfo.from_env().timeout_s))
    try:
        dmp, dense_opt, plan = _sharded_model(cfg, rank, world, local_world)
        plan_info = _plan_dict(plan)
        if rank == 0:
            text = str(plan)
            print(f"sharding plan ({world} process{'es' if world > 1 else ''}):\n{text}", file=sys.stderr, flush=True)
            atomic_write(run_dir / "train" / "plan.txt", text + "\n")
            atomic_write_json(run_dir / "train" / "plan.json", plan_info)
        start, history, restored_sparse_opt = 0, [], False
        if job["resume"] and run_dir.joinpath(*CKPT).exists():
            start, history, restored_sparse_opt = _resume(dmp, dense_opt, run_dir, world, rank)
        batch = cfg.data.batch_size
        steps_per_epoch = spec["n_train"] // batch
        if cfg.train.max_steps:
            steps_per_epoch = min(steps_per_epoch, cfg.train.max_steps)
        if steps_per_epoch < 1:
            raise ConfigError(f"data.batch_size {batch} is larger than the {spec['n_train']} training examples")
        timing = {}
        for epoch in range(start, cfg.train.epochs):
            loss, timing = _train_epoch(dmp, dense_opt, spec, batch, steps_per_epoch, rank, world, advance, epoch)
            _end_epoch(cfg, dmp, dense_opt, spec, run_dir, epoch, loss, timing, steps_per_epoch, history, rank, world)
        return {
            "ranks": _rank_rows(dmp, timing, batch // world, steps_per_epoch, rank, world),
            "plan": plan_info,
            "plan_text": str(plan),
            "history": history,
            "world_size": world,
            "steps_per_epoch": steps_per_epoch,
            "restored_sparse_opt": restored_sparse_opt,
        }
    finally:
        dist.destroy_process_group()


def _rank_rows(dmp: Any, timing: dict, local: int, steps: int, rank: int, world: int) -> list[dict[str, Any]]:
    """Every rank's examples/s of its last epoch and a sha256 of its dense (data-parallel,
    replicated) weights, gathered on every rank: equal digests show the replicas agree."""
    import torch.distributed as dist
    from torchrec.optim.optimizers import in_backward_optimizer_filter

    digest = hashlib.sha256()
    for name, p in sorted(in_backward_optimizer_filter(dmp.named_parameters())):
        digest.update(name.encode())
        digest.update(p.detach().contiguous().numpy().tobytes())
    rate = None
    if timing:
        rate = (steps - 1) * local / timing["steady"] if steps > 1 else local / timing["wall"]
    row = {"rank": rank, "samples_per_s": rate, "dense_weights_sha256": digest.hexdigest()}
    rows: list[Any] = [None] * world
    dist.all_gather_object(rows, row)
    return rows


def _sharded_model(cfg: RecsysConfig, rank: int, world: int, local_world: int) -> tuple[Any, Any, Any]:
    """The DLRM, its embedding tables sharded by torchrec's planner over the process group
    (fused sparse optimizer in backward), and the dense optimizer: (dmp, dense_opt, plan)."""
    import torch
    import torch.distributed as dist
    from torchrec.distributed import DistributedModelParallel
    from torchrec.distributed.planner import EmbeddingShardingPlanner, Topology
    from torchrec.optim import RowWiseAdagrad
    from torchrec.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
    from torchrec.optim.keyed import KeyedOptimizerWrapper
    from torchrec.optim.optimizers import in_backward_optimizer_filter

    from .model import Sharder, build_dlrm, constraints

    model = build_dlrm(cfg, sparse_device="meta")
    sparse_cls = RowWiseAdagrad if cfg.train.sparse_optimizer == "rowwise_adagrad" else torch.optim.SGD
    apply_optimizer_in_backward(sparse_cls, model.sparse_arch.parameters(), {"lr": cfg.train.sparse_lr})
    topology = Topology(world_size=world, local_world_size=local_world, compute_device="cpu")
    planner = EmbeddingShardingPlanner(topology=topology, constraints=constraints(cfg))
    sharders = [Sharder()]
    try:
        plan = planner.collective_plan(model, sharders, dist.GroupMember.WORLD)
    except Exception as exc:  # noqa: BLE001  the planner raises plain errors for impossible constraints
        raise ConfigError(
            f"the sharding planner found no plan for train.sharding={cfg.train.sharding}: {str(exc).splitlines()[0].strip()}"
        ) from None
    torch.manual_seed(cfg.seed + rank)
    dmp = DistributedModelParallel(module=model, device=torch.device("cpu"), plan=plan, sharders=sharders)
    dense_opt = KeyedOptimizerWrapper(
        dict(in_backward_optimizer_filter(dmp.named_parameters())),
        lambda params: torch.optim.Adam(params, lr=cfg.train.dense_lr),
    )
    return dmp, dense_opt, plan


def _resume(dmp: Any, dense_opt: Any, run_dir: Path, world: int, rank: int) -> tuple[int, list, bool]:
    """Load the last checkpoint into ``dmp``/``dense_opt``: (next epoch, history, whether the
    sparse optimizer state was restored too)."""
    import torch

    from .state import copy_into

    ckpt_path = run_dir.joinpath(*CKPT)
    ck = torch.load(ckpt_path, weights_only=True)
    copy_into(dmp, ck["model"])
    if ck.get("dense_opt") is not None:
        dense_opt.init_state()  # KeyedOptimizer loads only into existing (lazily built) state
        dense_opt.load_state_dict(ck["dense_opt"])
    restored_sparse_opt = _restore_sparse_opt(dmp, run_dir, int(ck["epoch"]), world, rank)
    start = int(ck["epoch"]) + 1
    if rank == 0:
        print(f"resumed from {ckpt_path} after epoch {start}", file=sys.stderr, flush=True)
    return start, json.loads(ck["history"]), restored_sparse_opt


def _train_epoch(
    dmp: Any,
    dense_opt: Any,
    spec: dict,
    batch: int,
    steps: int,
    rank: int,
    world: int,
    advance: Callable | None,
    epoch: int,
) -> tuple[Any, dict[str, float]]:
    """One epoch of this rank's batches: the all-reduced (loss sum, examples) and its timing
    (``wall``: the epoch; ``steady``: from the end of the first step, which builds lazy state)."""
    import torch
    import torch.distributed as dist

    from . import data as D

    bce = torch.nn.functional.binary_cross_entropy_with_logits
    local = batch // world
    dmp.train()
    loss_sum = torch.zeros(2, dtype=torch.float64)
    t0 = t1 = time.perf_counter()
    for step, (dense, kjt, labels) in enumerate(D.train_batches(spec, batch, rank, world)):
        if step >= steps:
            break
        logits = dmp(dense, kjt).squeeze(-1)
        loss = bce(logits, labels)
        dense_opt.zero_grad()
        loss.backward()
        dense_opt.step()
        loss_sum += torch.tensor([loss.item() * local, local], dtype=torch.float64)
        if step == 0:  # the first step builds lazy kernels/state: timed apart
            t1 = time.perf_counter()
        if advance is not None:
            advance(1)
        if step == 1:
            kill_point(f"recsys:mid_epoch:{epoch + 1}")  # test-only (mlx_core.faults)
    time_end = time.perf_counter()
    dist.all_reduce(loss_sum)
    return loss_sum, {"wall": time_end - t0, "steady": time_end - t1}


def _end_epoch(
    cfg: RecsysConfig, dmp: Any, dense_opt: Any, spec: dict, run_dir: Path, epoch: int, loss_sum: Any,
    timing: dict[str, float], steps: int, history: list, rank: int, world: int,
) -> None:  # fmt: skip
    """Save this rank's optimizer shards; rank 0 then evaluates, appends the epoch's row to
    ``history`` and writes the checkpoint."""
    import torch
    import torch.distributed as dist

    from .state import evaluate, gather_full_state, local_optimizer_state

    state = gather_full_state(dmp, rank)
    # each rank saves its own shards of the fused optimizer state under this epoch's name, then
    # rank 0 the checkpoint; the shards last.pt names stay until the next last.pt is in
    with atomic_path(_opt_path(run_dir, rank, world, epoch)) as tmp:
        torch.save({"epoch": epoch, "world_size": world, "state": local_optimizer_state(dmp)}, tmp)
    dist.barrier()
    kill_point(f"recsys:before_checkpoint:{epoch + 1}")  # test-only: shards in, last.pt not
    if rank == 0:
        batch = cfg.data.batch_size
        metrics = evaluate(cfg, state, spec, "val")
        row = {
            "epoch": epoch + 1,
            "train_loss": float(loss_sum[0] / loss_sum[1]),
            "val_auc": metrics["auc"],
            "val_ne": metrics["ne"],
            "val_logloss": metrics["logloss"],
            # steady state: steps after the first (all of them when there is one step)
            "examples_per_s": (steps - 1) * batch / timing["steady"] if steps > 1 else batch / timing["wall"],
            "epoch_s": timing["wall"],
        }
        history.append(row)
        print(
            f"epoch {epoch + 1}: loss {row['train_loss']:.4f} val_auc {row['val_auc']:.4f} "
            f"val_ne {row['val_ne']:.4f} {row['examples_per_s']:.0f} ex/s",
            file=sys.stderr,
            flush=True,
        )
        with atomic_path(run_dir.joinpath(*CKPT)) as tmp:
            torch.save(
                {"epoch": epoch, "model": state, "dense_opt": dense_opt.state_dict(), "history": json.dumps(history)},
                tmp,
            )
    dist.barrier()
    # every rank's last.pt is now the one for `epoch`: older shard sets are unreachable
    _remove_stale_shards(run_dir, rank, world, epoch)


def _opt_path(run_dir: Path, rank: int, world: int, epoch: int) -> Path:
    """Rank ``rank``'s fused optimizer shards after (0-based) ``epoch``: one file per epoch, so
    writing epoch E+1's set never replaces the set that the current last.pt (epoch E) needs."""
    return run_dir / "checkpoints" / f"sparse_opt.epoch{epoch}.rank{rank}-of-{world}.pt"


def _remove_stale_shards(run_dir: Path, rank: int, world: int, epoch: int) -> None:
    keep = _opt_path(run_dir, rank, world, epoch)
    for path in (run_dir / "checkpoints").glob(f"sparse_opt.*rank{rank}-of-{world}.pt"):
        if path != keep:
            path.unlink(missing_ok=True)


def _restore_sparse_opt(dmp: Any, run_dir: Path, epoch: int, world: int, rank: int) -> bool:
    """Restore this rank's fused optimizer shards when every rank has them for ``epoch`` (same
    world size and plan); otherwise every rank restarts the sparse optimizer state."""
    import torch
    import torch.distributed as dist

    from .state import load_local_optimizer_state

    ok = 1
    saved = None
    try:
        saved = torch.load(_opt_path(run_dir, rank, world, epoch), weights_only=True)
        if int(saved["epoch"]) != epoch:
            ok = 0
    except (OSError, RuntimeError, KeyError):
        ok = 0
    flag = torch.tensor([ok])
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    if not int(flag):
        return False
    load_local_optimizer_state(dmp, saved["state"])
    return True


def _plan_dict(plan: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for module_path, module_plan in plan.plan.items():
        for param, ps in module_plan.items():
            shards = []
            if ps.sharding_spec is not None and hasattr(ps.sharding_spec, "shards"):
                for sh in ps.sharding_spec.shards:
                    shards.append(
                        {
                            "offsets": list(sh.shard_offsets),
                            "sizes": list(sh.shard_sizes),
                            "placement": str(sh.placement),
                        }
                    )
            out[param] = {
                "module": module_path,
                "sharding_type": ps.sharding_type,
                "compute_kernel": ps.compute_kernel,
                "ranks": list(ps.ranks) if ps.ranks is not None else None,
                "shards": shards,
            }
    return out
