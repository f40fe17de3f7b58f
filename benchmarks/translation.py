"""Translation benchmark: exported (KV-cached) greedy decoding against eager ``generate()``, tokens/s.

Issue 20, goal 1: the ``torch.export`` programs of ``mlx_translation.exported`` (encoder once, then
one cached decoder step per token, past K/V in and out) against ``model.generate()`` at batch 1, 8
and 32, on 2 threads: greedy (``num_beams=1``) and beam search (``num_beams=4``, the cache reordered
by beam each step). Every case is warmed up and its tokens checked identical to ``generate()``'s,
then the repeats run interleaved across cases and backends; median and min ratio per case. Goals:
greedy >= 1.5x at batch 1 and >= 1.0x at 8 and 32, beam >= 1.0x at batch 8.

    python benchmarks/translation.py                    # the plugin's default model shape, random weights (minutes)
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

from goals import goal

RESULTS = Path(__file__).parent / "results"
GREEDY_TARGETS = {1: 1.5, 8: 1.0, 32: 1.0}
BEAM_TARGETS = {8: 1.0}  # batch 1 and 32 are measured too, without a goal
# why batch-1 greedy misses 1.5 when it does (see the translation README, "Exported decoding")
BATCH1_REASON = (
    "at batch 1 a decoder step is ~250 tiny aten ops; the exported step saves generate()'s Python work "
    "(logits processors, stopping criteria, cache objects) but runs the same kernels, and on loaded cores "
    "each 2-thread kernel (attention, softmax) waits for its second thread: at load ~18 the fastest tenth "
    "of the step calls took up to 27 ms with 2 threads against 1.4 ms with 1 thread (best: 1.2 ms)"
)


def goals_of(rows: list[dict], load_before, load_after) -> list[dict]:
    """The issue-20 goal records of the measured cases (``met`` computed by ``goals.goal``)."""
    load = f"load average {load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} cores while timed"
    out = []
    for r in rows:
        greedy = r["beams"] == 1
        target = GREEDY_TARGETS.get(r["batch_size"], 1.0) if greedy else BEAM_TARGETS.get(r["batch_size"])
        if target is None:
            continue  # beam at batch 1 and 32: measured, no goal
        what = (
            "KV-cached greedy / eager generate()"
            if greedy
            else f"KV-cached beam search ({r['beams']} beams) / eager generate(num_beams={r['beams']})"
        )
        if not r["token_identical"]:
            reason = "exported tokens differ from generate()"
        else:
            reason = f"median ratio {r['ratio_median']} (min {r['ratio_min']}) below {target}; {load}"
            if greedy and r["batch_size"] == 1:
                reason += "; " + BATCH1_REASON
        out.append(
            goal(
                f"translation: exported {what} tokens/s, batch {r['batch_size']}, token-identical",
                r["ratio_median"] if r["token_identical"] else None,
                f">= {target}",
                reason=reason,
                min_ratio=r["ratio_min"],
            )
        )
    return out


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

    # every case warmed up and token-checked first, then the repeats interleaved across cases and
    # backends (case 1 eager, case 1 exported, case 2 eager, ...), so load drift hits all of them alike
    cases = [("greedy", 1, bs) for bs in args.batch_sizes] + [
        (f"beam{args.beams}", args.beams, bs) for bs in args.batch_sizes
    ]
    inputs, rows, times = {}, [], {}
    for mode, beams, bs in cases:
        ids, mask = inputs[mode, bs] = batch(bs)
        e_out, x_out = eager(ids, mask, beams), exported(ids, mask, beams)  # warm-up and token check
        # greedy: the generated tokens up to EOS (generate pads finished rows); beam: the whole tensor
        same = (
            [generated(a, pad, eos) for a in e_out] == [generated(b, pad, eos) for b in x_out]
            if beams == 1
            else e_out.shape == x_out.shape and bool(torch.equal(e_out, x_out))
        )
        tokens = sum(len(generated(r, pad, eos)) for r in e_out)
        rows.append(
            {"mode": mode, "beams": beams, "batch_size": bs, "generated_tokens": tokens, "token_identical": same}
        )
        times[mode, bs] = {"eager": [], "exported": []}
    load_before = os.getloadavg()
    for _ in range(args.repeats):
        for mode, beams, bs in cases:
            ids, mask = inputs[mode, bs]
            for name, fn in (("eager", eager), ("exported", exported)):
                t0 = time.perf_counter()
                fn(ids, mask, beams)
                times[mode, bs][name].append(time.perf_counter() - t0)
    load_after = os.getloadavg()
    for row in rows:
        t = times[row["mode"], row["batch_size"]]
        pair = [e / x for e, x in zip(t["eager"], t["exported"], strict=True)]
        tokens = row["generated_tokens"]
        row.update(
            eager_tokens_per_s=round(tokens / statistics.median(t["eager"]), 1),
            exported_tokens_per_s=round(tokens / statistics.median(t["exported"]), 1),
            ratio_median=round(statistics.median(t["eager"]) / statistics.median(t["exported"]), 3),
            ratio_min=round(min(pair), 3),
            eager_s=[round(x, 4) for x in t["eager"]],
            exported_s=[round(x, 4) for x in t["exported"]],
        )
        console.print(f"  {row['mode']} batch {row['batch_size']}: x{row['ratio_median']} (min x{row['ratio_min']})")

    goals = goals_of(rows, load_before, load_after)

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
                      str(r["token_identical"]))  # fmt: skip
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
        # (1, 5, 15-minute) load average when the timed repeats started and ended
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
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
