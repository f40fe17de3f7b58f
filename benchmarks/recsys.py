"""recsys benchmark: DMP training throughput (1 and 2 gloo processes, two sharding types),
embedding lookup throughput (torchrec's FusedEmbeddingBagCollection, one FBGEMM table-batched
kernel with the optimizer fused into backward, vs a loop of torch.nn.EmbeddingBag per table
with torch.optim.SGD, on the same KeyedJaggedTensor batches), float vs int8 table memory.

    .venv/bin/python benchmarks/recsys.py            # a few minutes on 2 cores
    .venv/bin/python benchmarks/recsys.py --quick    # smaller
    .venv/bin/python benchmarks/recsys.py --tables 8 16 32 --rows 100000 --examples 100000

Writes benchmarks/results/recsys.json and benchmarks/results/recsys.png. Timings on a shared
machine are noisy: each figure is the median of several repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
OUT = Path(__file__).parent / "results"


# --- embedding lookups ------------------------------------------------------------------------
def lookup_bench(n_tables: int, rows: int, dim: int, batch: int, mean_len: int, repeats: int, seed: int = 0) -> dict:
    import torch
    from torchrec import EmbeddingBagConfig
    from torchrec.modules.fused_embedding_modules import FusedEmbeddingBagCollection
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    g = torch.Generator().manual_seed(seed)
    keys = [f"f{i}" for i in range(n_tables)]
    lengths = torch.randint(0, 2 * mean_len + 1, (n_tables * batch,), generator=g)
    # power-law ids: a few hot rows, a long tail
    u = torch.rand(int(lengths.sum()), generator=g)
    values = (rows * u**3).long().clamp_max(rows - 1)
    kjt = KeyedJaggedTensor(keys=keys, values=values, lengths=lengths)

    lr = 0.01
    tables = [
        EmbeddingBagConfig(name=f"t{i}", embedding_dim=dim, num_embeddings=rows, feature_names=[k])
        for i, k in enumerate(keys)
    ]
    # torchrec's fused collection: one fbgemm table-batched kernel for all tables, SGD fused into backward
    febc = FusedEmbeddingBagCollection(
        tables=tables, optimizer_type=torch.optim.SGD, optimizer_kwargs={"lr": lr}, device=torch.device("cpu")
    )
    bags = torch.nn.ModuleList(torch.nn.EmbeddingBag(rows, dim, mode="sum", sparse=True) for _ in range(n_tables))
    opt = torch.optim.SGD(bags.parameters(), lr=lr)
    with torch.no_grad():
        sd = febc.state_dict()
        for t in range(n_tables):
            bags[t].weight.copy_(sd[f"embedding_bags.t{t}.weight"])

    def fused():
        return febc(kjt).values()  # KeyedTensor [B, T*dim]

    def loop():
        outs = []
        for t, jt in enumerate(kjt.split([1] * n_tables)):
            outs.append(bags[t](jt.values(), jt.offsets()[:-1]))
        return torch.cat(outs, dim=1)

    grad = torch.randn(batch, n_tables * dim, generator=g)

    def fused_step():  # forward + backward; the SGD update happens inside backward
        fused().backward(grad)

    def loop_step():  # forward + backward (sparse gradients) + optimizer step
        opt.zero_grad()
        loop().backward(grad)
        opt.step()

    with torch.no_grad():
        max_diff = float((fused() - loop()).abs().max())
    fused_step(), loop_step()
    with torch.no_grad():  # the same SGD update on both sides keeps the weights equal
        max_diff_after_step = float((fused() - loop()).abs().max())

    def timed(fns: dict, grad_mode: bool) -> dict:
        times: dict = {k: [] for k in fns}
        with torch.set_grad_enabled(grad_mode):
            for fn in fns.values():
                fn()  # warm-up
            for _ in range(repeats):  # interleaved, so load from other jobs hits both alike
                for k, fn in fns.items():
                    t0 = time.perf_counter()
                    fn()
                    times[k].append(time.perf_counter() - t0)
        return {k: statistics.median(v) for k, v in times.items()}

    fw = timed({"fused": fused, "loop": loop}, False)
    tr = timed({"fused": fused_step, "loop": loop_step}, True)
    tf, tl = fw["fused"], fw["loop"]
    return {
        "tables": n_tables, "rows": rows, "dim": dim, "batch": batch, "ids_per_batch": int(values.numel()),
        "fused_examples_per_s": batch / tf, "loop_examples_per_s": batch / tl, "speedup": tl / tf,
        "fused_train_examples_per_s": batch / tr["fused"], "loop_train_examples_per_s": batch / tr["loop"],
        "train_speedup": tr["loop"] / tr["fused"],
        "max_abs_diff": max_diff, "max_abs_diff_after_sgd_step": max_diff_after_step,
    }  # fmt: skip


# --- table memory -----------------------------------------------------------------------------
def memory_bench(n_tables: int, rows: int, dim: int) -> dict:
    """Bytes of the tables as float32 (EmbeddingBagCollection) and after the export's
    quantize_embeddings (int8 row-wise: 1 byte per value + a 2x fp16 scale/bias per row, padded)."""
    import torch
    from mlx_recsys.export import table_bytes
    from torchrec import EmbeddingBagCollection, EmbeddingBagConfig
    from torchrec.inference.modules import quantize_embeddings

    tables = [
        EmbeddingBagConfig(name=f"t{i}", embedding_dim=dim, num_embeddings=rows, feature_names=[f"f{i}"])
        for i in range(n_tables)
    ]
    model = torch.nn.Module()
    model.ebc = EmbeddingBagCollection(tables=tables, device=torch.device("cpu"))
    f = table_bytes(model.state_dict())
    q = quantize_embeddings(model, dtype=torch.qint8, inplace=True)
    i8 = table_bytes(q.state_dict())
    return {"tables": n_tables, "rows": rows, "dim": dim, "float_bytes": f, "int8_bytes": i8, "ratio": f / i8}


# --- training throughput ----------------------------------------------------------------------
def train_bench(nproc: int, sharding: str, data_dir: Path, examples: int, epochs: int) -> dict:
    """`mlx run recsys train --nproc N` (the core launcher) on the same generated log."""
    import subprocess
    import sys

    shard = f'{{product_table="{sharding}",user_table="{sharding}",category_table="table_wise"}}'
    sets = [f"data.examples={examples}", "data.batch_size=512", f"train.epochs={epochs}",
            "train.allow_oversubscribe=true", f"train.sharding={shard}"]  # fmt: skip
    runs = data_dir / f"runs_{nproc}_{sharding}"
    cmd = [sys.executable, "-m", "mlx_core", "run", "recsys", "train", "--runs-dir", str(runs), "--device", "cpu",
           "--nproc", str(nproc), *[a for s in sets for a in ("--set", s)]]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    m = json.loads((run_dir / "run.json").read_text())
    last = m["stages"]["train"]["history"][-1]
    plan = {k: v["sharding_type"] for k, v in m["records"]["sharding_plan"].items()}
    return {"nproc": nproc, "sharding": sharding, "examples_per_s": last["examples_per_s"], "val_auc": last["val_auc"],
            "wall_s": wall, "plan": plan}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    ap.add_argument("--tables", type=int, nargs="+", default=[4, 8, 16], help="table counts for the lookup benchmark")
    ap.add_argument("--rows", type=int, default=20000, help="rows per table (lookup / memory)")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--examples", type=int, default=20000, help="generated click-log rows for training")
    ap.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--shardings", nargs="+", default=["table_wise", "row_wise"])
    ap.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1],
        help="torch thread counts for the lookup benchmark (each measured); on a loaded machine more than 1 mostly measures OpenMP waits",
    )
    ap.add_argument("--no-train", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.tables, args.rows, args.batch, args.examples = [4, 8], 5000, 512, 8000
    repeats = 5 if args.quick else 15

    import torch
    from rich.console import Console
    from rich.table import Table

    console = Console(width=170)
    lookups = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for n in args.tables:
            console.log(f"lookup: {n} tables, {threads} thread(s)")
            lookups.append({"threads": threads, **lookup_bench(n, args.rows, args.dim, args.batch, 10, repeats)})
    torch.set_num_threads(os.cpu_count() or 1)
    memory = [memory_bench(n, args.rows, args.dim) for n in args.tables]
    training = []
    if not args.no_train:
        with tempfile.TemporaryDirectory() as tmp:
            for sharding in args.shardings:
                for nproc in args.nprocs:
                    console.log(f"train: {nproc} process(es), {sharding}")
                    training.append(train_bench(nproc, sharding, Path(tmp), args.examples, 2))

    t = Table(
        title=f"embedding lookups: FusedEmbeddingBagCollection vs nn.EmbeddingBag loop (median, batch {args.batch}, dim {args.dim})"
    )
    for c in ("threads", "tables", "ids/batch", "fused fwd ex/s", "loop fwd ex/s", "fwd speedup", "fused train ex/s", "loop train ex/s",
              "train speedup", "max |diff|"):  # fmt: skip
        t.add_column(c, justify="right")
    for r in lookups:
        t.add_row(str(r["threads"]), str(r["tables"]), str(r["ids_per_batch"]), f"{r['fused_examples_per_s']:,.0f}", f"{r['loop_examples_per_s']:,.0f}",
                  f"{r['speedup']:.2f}x", f"{r['fused_train_examples_per_s']:,.0f}", f"{r['loop_train_examples_per_s']:,.0f}",
                  f"{r['train_speedup']:.2f}x", f"{max(r['max_abs_diff'], r['max_abs_diff_after_sgd_step']):.1e}")  # fmt: skip
    console.print(t)
    t = Table(title=f"table memory ({args.rows} rows x {args.dim})")
    for c in ("tables", "float32", "int8 row-wise", "ratio"):
        t.add_column(c, justify="right")
    for r in memory:
        t.add_row(
            str(r["tables"]),
            f"{r['float_bytes'] / 2**20:.1f} MiB",
            f"{r['int8_bytes'] / 2**20:.1f} MiB",
            f"{r['ratio']:.2f}x",
        )
    console.print(t)
    if training:
        t = Table(title=f"DMP training (gloo, {args.examples} generated examples, batch 512, epoch 2)")
        for c in ("processes", "sharding", "examples/s", "val AUC", "wall s"):
            t.add_column(c, justify="right")
        for r in training:
            t.add_row(
                str(r["nproc"]),
                r["sharding"],
                f"{r['examples_per_s']:,.0f}",
                f"{r['val_auc']:.4f}",
                f"{r['wall_s']:.1f}",
            )
        console.print(t)

    OUT.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "note": "2 cores shared with other jobs: timings are noisy",
        },  # fmt: skip
        "args": vars(args),
        "lookup": lookups,
        "memory": memory,
        "training": training,
    }
    (OUT / "recsys.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, OUT / "recsys.png")
    console.print(f"wrote {OUT / 'recsys.json'} and {OUT / 'recsys.png'}")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = 3 if result["training"] else 2
    fig, ax = plt.subplots(1, n, figsize=(4.2 * n, 3.4))
    threads = sorted({r["threads"] for r in result["lookup"]})
    for i, th in enumerate(threads):
        lk = [r for r in result["lookup"] if r["threads"] == th]
        tabs = [r["tables"] for r in lk]
        ax[0].plot(tabs, [r["speedup"] for r in lk], "o-", color=f"C{i}", label=f"forward, {th} thr")
        ax[0].plot(tabs, [r["train_speedup"] for r in lk], "s--", color=f"C{i}", label=f"fwd+bwd+update, {th} thr")
    ax[0].set_yscale("log")
    ax[0].axhline(1.0, color="gray", lw=0.8)
    ax[0].axhline(2.0, color="gray", lw=0.8, ls="--")
    ax[0].set_xticks(tabs)
    ax[0].set_xlabel("tables")
    ax[0].set_ylabel("FusedEBC / nn.EmbeddingBag loop")
    ax[0].set_title("embedding lookups: speedup", fontsize=9)
    ax[0].legend(fontsize=8)
    mem = result["memory"]
    x = range(len(mem))
    ax[1].bar([i - 0.2 for i in x], [r["float_bytes"] / 2**20 for r in mem], 0.4, label="float32")
    ax[1].bar([i + 0.2 for i in x], [r["int8_bytes"] / 2**20 for r in mem], 0.4, label="int8 row-wise")
    ax[1].set_xticks(list(x), [f"{r['tables']} tables" for r in mem])
    ax[1].set_ylabel("table MiB")
    ax[1].legend(fontsize=8)
    if result["training"]:
        tr = result["training"]
        ax[2].bar(
            range(len(tr)), [r["examples_per_s"] for r in tr], color=["C0" if r["nproc"] == 1 else "C1" for r in tr]
        )
        ax[2].set_xticks(range(len(tr)), [f"{r['nproc']}p {r['sharding']}" for r in tr], rotation=20, fontsize=8)
        ax[2].set_ylabel("training examples/s")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
