"""Translation benchmark: exported (KV-cached) greedy decoding against eager ``generate()``, tokens/s.

Issue 20, goal 1: the ``torch.export`` programs of ``mlx_translation.exported`` (encoder once, then
one cached decoder step per token) against ``model.generate(do_sample=False, num_beams=1)`` at
batch 1, 8 and 32, on 2 threads, the two backends interleaved, median and min of the repeats; the
exported tokens are checked identical to ``generate()``'s on every batch. Beam search: one
interleaved case at batch 8 (the exported beam loop still recomputes the prefix and is not checked
token-identical, so that goal is recorded as not met).

    python benchmarks/translation.py                    # the plugin's default model shape, random weights (~1-2 min)
    python benchmarks/translation.py --run-dir RUN_DIR  # a trained, exported run (its tokenizer and weights)

Writes ``benchmarks/results/translation.json`` (top-level ``goals``) and ``translation.png``.
The machine this was written on has 2 cores shared with other jobs: absolute timings are noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
GREEDY_TARGETS = {1: 1.5, 8: 1.0, 32: 1.0}


def generated(row, pad: int, eos: int) -> list[int]:
    """The generated tokens of one output row: no start token, up to and including the first EOS.

    Without an EOS every position was generated (a random model may well predict the pad id), so
    only the padding after an EOS is left out; greedy ``generate()`` pads finished rows.
    """
    toks = [int(t) for t in row][1:]
    return toks[: toks.index(eos) + 1] if eos in toks else toks


def load(run_dir: Path | None, sentences: int):
    """(model, runner, batches-source) for a trained run or a random T5 of the plugin's default shape."""
    import torch
    from mlx_translation.exported import ExportedSeq2Seq, export_programs

    if run_dir is not None:
        from mlx_translation.grammar import generate
        from mlx_translation.predict import Translator

        translator = Translator(run_dir / "export" / "hf")
        texts = [r["translation"]["en"] for r in generate(sentences, seed=4242)]
        enc = translator.encode(texts)
        runner = ExportedSeq2Seq(run_dir / "export" / "torch_export")
        return translator.model, runner, enc["input_ids"], enc["attention_mask"], f"trained run {run_dir}"
    from mlx_translation.config import TranslationConfig
    from transformers import T5Config, T5ForConditionalGeneration

    cfg = TranslationConfig().model
    torch.manual_seed(0)
    vocab = 600
    model = T5ForConditionalGeneration(
        T5Config(vocab_size=vocab, d_model=cfg.d_model, d_kv=cfg.d_model // cfg.num_heads, d_ff=cfg.d_ff,
                 num_layers=cfg.num_layers, num_decoder_layers=cfg.num_layers, num_heads=cfg.num_heads,
                 dropout_rate=0.0, feed_forward_proj="relu", tie_word_embeddings=True,
                 pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    ).eval()  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="mlx-translation-bench-"))
    export_programs(model, folder)
    # source lengths 6..24 with right padding, like a tokenized batch of sentences
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(6, 25, (sentences,), generator=g)
    ids = torch.randint(2, vocab, (sentences, int(lengths.max())), generator=g)
    mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
    ids = ids * mask
    label = f"random T5 of the default model shape (d_model {cfg.d_model}, {cfg.num_layers} layers), vocab {vocab}"
    return model, ExportedSeq2Seq(folder), ids, mask, label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, help="an exported translation run (default: random default-shape T5)")
    parser.add_argument("--sentences", type=int, default=32, help="sentences per pass (also the largest batch)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "translation.json")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch
    from mlx_translation.files import quiet_transformers
    from rich.console import Console
    from rich.table import Table

    quiet_transformers()
    torch.set_num_threads(args.threads)
    console = Console()
    model, runner, all_ids, all_mask, label = load(args.run_dir, args.sentences)
    pad, eos, n_new = model.config.pad_token_id, model.config.eos_token_id, args.max_new_tokens

    def eager(ids, mask, beams):
        with torch.no_grad():
            return model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=n_new, do_sample=False, num_beams=beams
            )

    def exported(ids, mask, beams):
        if beams == 1:
            return runner.greedy(ids, mask, n_new)
        return runner.beam(ids, mask, n_new, beams)

    def batch(bs):
        # the first bs sentences, trimmed to their longest row (what a tokenizer would give)
        mask = all_mask[:bs]
        width = int(mask.sum(1).max())
        return all_ids[:bs, :width], mask[:, :width]

    cases = [("greedy", 1, bs) for bs in args.batch_sizes] + [(f"beam{args.beams}", args.beams, 8)]
    rows, identical = [], {}
    for mode, beams, bs in cases:
        ids, mask = batch(bs)
        e_out, x_out = eager(ids, mask, beams), exported(ids, mask, beams)  # warm-up and token check
        tokens = sum(len(generated(r, pad, eos)) for r in e_out)
        if beams == 1:
            identical[bs] = [generated(a, pad, eos) for a in e_out] == [generated(b, pad, eos) for b in x_out]
        times = {"eager": [], "exported": []}
        reps = args.repeats if beams == 1 else 2
        for _ in range(reps):  # interleaved: eager, exported, eager, ...
            for name, fn in (("eager", eager), ("exported", exported)):
                t0 = time.perf_counter()
                fn(ids, mask, beams)
                times[name].append(time.perf_counter() - t0)
        pair = [e / x for e, x in zip(times["eager"], times["exported"], strict=True)]
        row = {
            "mode": mode,
            "batch_size": bs,
            "generated_tokens": tokens,
            "eager_tokens_per_s": round(tokens / statistics.median(times["eager"]), 1),
            "exported_tokens_per_s": round(tokens / statistics.median(times["exported"]), 1),
            "ratio_median": round(statistics.median(times["eager"]) / statistics.median(times["exported"]), 3),
            "ratio_min": round(min(pair), 3),
            "eager_s": [round(t, 4) for t in times["eager"]],
            "exported_s": [round(t, 4) for t in times["exported"]],
        }
        if beams == 1:
            row["token_identical"] = identical[bs]
        rows.append(row)
        console.print(f"  {mode} batch {bs}: x{row['ratio_median']} (min x{row['ratio_min']})")

    goals = []
    for r in rows:
        if r["mode"] != "greedy":
            continue
        target = GREEDY_TARGETS.get(r["batch_size"], 1.0)
        met = r["ratio_median"] >= target and r["token_identical"]
        goal = {
            "goal": f"translation: exported KV-cached greedy / eager generate() tokens/s, batch {r['batch_size']}, token-identical",
            "ratio": r["ratio_median"],
            "target": f">= {target}",
            "met": met,
            "min_ratio": r["ratio_min"],
        }
        if not met:
            goal["reason"] = (
                "exported tokens differ from generate()" if not r["token_identical"]
                else f"median ratio {r['ratio_median']} below {target}: the cached step runs the same matmuls and "
                     "attention as eager and saves only generate()'s Python overhead; on 2 shared, loaded cores "
                     "2 threads add a per-step thread hand-off wait larger than either backend's own work"
            )  # fmt: skip
        goals.append(goal)
    beam = next(r for r in rows if r["mode"] != "greedy")
    goals.append({
        "goal": f"translation: exported beam search ({args.beams} beams) / eager generate(num_beams) tokens/s, batch 8, token-identical",
        "ratio": beam["ratio_median"],
        "target": ">= 1.0",
        "met": False,
        "min_ratio": beam["ratio_min"],
        "reason": "not done: the exported beam loop still recomputes the whole prefix (no cache reordering) and is "
                  "not checked token-identical to generate(num_beams=...)",
    })  # fmt: skip

    table = Table(title=f"translation generation, {label} (CPU, {args.threads} threads, max_new_tokens={n_new})")
    for col in (
        "mode",
        "batch",
        "tokens",
        "eager tok/s",
        "exported tok/s",
        "ratio (median)",
        "ratio (min)",
        "identical",
    ):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for r in rows:
        table.add_row(r["mode"], str(r["batch_size"]), str(r["generated_tokens"]), f"{r['eager_tokens_per_s']:.1f}",
                      f"{r['exported_tokens_per_s']:.1f}", f"{r['ratio_median']:.2f}", f"{r['ratio_min']:.2f}",
                      str(r.get("token_identical", "not checked")))  # fmt: skip
    console.print(table)
    gt = Table(title="goals")
    for col in ("goal", "ratio", "target", "met"):
        gt.add_column(col)
    for g in goals:
        gt.add_row(g["goal"], str(g["ratio"]), g["target"], str(g["met"]))
    console.print(gt)

    result = {
        "benchmark": "translation",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": args.threads,
            "note": "2 cores shared with other jobs while measured: timings are noisy",
        },
        "model": label,
        "settings": {
            "max_new_tokens": n_new,
            "repeats": args.repeats,
            "sentences": args.sentences,
            "beams": args.beams,
        },
        "goals": goals,
        "cases": rows,
    }
    from mlx_core.runs import atomic_write_json

    atomic_write_json(args.out, result)
    plot(rows, args.out.with_suffix(".png"), label, args.threads)
    console.print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def plot(rows: list[dict], path: Path, label: str, threads: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"{r['mode']}\nbatch {r['batch_size']}" for r in rows]
    xs = range(len(rows))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar([x - 0.2 for x in xs], [r["eager_tokens_per_s"] for r in rows], 0.4, label="eager generate()")
    ax.bar([x + 0.2 for x in xs], [r["exported_tokens_per_s"] for r in rows], 0.4, label="exported (KV cache)")
    for x, r in zip(xs, rows, strict=True):
        ax.annotate(
            f"x{r['ratio_median']:.2f}", (x + 0.2, r["exported_tokens_per_s"]), ha="center", va="bottom", fontsize=8
        )
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names)
    ax.set_ylabel("generated tokens / s")
    ax.set_yscale("log")
    ax.set_title(f"{label}\nCPU, {threads} threads; label: exported / eager (median)", fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    plt.close(fig)


if __name__ == "__main__":
    main()
