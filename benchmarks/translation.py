"""Translation benchmark: training examples/s and held-out BLEU, then generation tokens/s.

Generation is timed for greedy and beam search at batch sizes 1, 8 and 32, with the eager
``save_pretrained`` model (``generate()``) and with the ``torch.export`` programs (the greedy and
beam loops of ``mlx_translation.exported``). Prints a table, writes
``benchmarks/results/translation.json`` and ``translation.png``.

    python benchmarks/translation.py                      # trains the 'small' preset first (~2 min)
    python benchmarks/translation.py --preset default     # the plugin's default config (BLEU claim)
    python benchmarks/translation.py --run-dir RUN_DIR    # reuse an exported run

The machine this was written on has 2 cores shared with other jobs: absolute timings are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

PRESETS = {
    # a few minutes on one busy core: a smaller corpus and model than the defaults
    "small": [
        "data.size=2000",
        "data.vocab_size=500",
        "model.d_model=64",
        "model.d_ff=128",
        "model.num_heads=4",
        "model.num_layers=2",
        "model.dropout=0",
        "train.epochs=6",
        "train.batch_size=16",
        "train.learning_rate=0.003",
        "train.eval_samples=64",
        "train.generation_max_length=40",
    ],
    "default": [],  # the plugin's defaults: 5000 pairs, d_model 128, 8 epochs
}


def train_run(preset: str, runs_dir: Path, device: str) -> tuple[Path, float]:
    sets = [a for s in PRESETS[preset] for a in ("--set", s)]
    cmd = [
        sys.executable,
        "-m",
        "mlx_core",
        "run",
        "translation",
        "export",
        "--runs-dir",
        str(runs_dir),
        "--device",
        device,
        *sets,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"training run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1]), wall


def generated(row, pad: int, eos: int) -> list[int]:
    """The generated tokens of one output row: no start token, up to and including the first EOS.

    (Batched beam search in transformers 5 fills finished rows with EOS, greedy with pad.)
    """
    toks = [int(t) for t in row][1:]
    if eos in toks:
        return toks[: toks.index(eos) + 1]
    while toks and toks[-1] == pad:
        toks.pop()
    return toks


def count_generated(rows, pad: int, eos: int) -> int:
    return sum(len(generated(row, pad, eos)) for row in rows)


def time_generation(fn, texts: list[str], batch_size: int, pad: int, eos: int, min_seconds: float) -> dict:
    """Run ``fn(batch)`` over ``texts`` in batches (repeating the pass until min_seconds); tokens/s."""
    fn(texts[:batch_size])  # warm-up
    tokens = sentences = 0
    t0 = time.perf_counter()
    while True:
        for i in range(0, len(texts), batch_size):
            rows = fn(texts[i : i + batch_size])
            tokens += count_generated(rows, pad, eos)
            sentences += len(rows)
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds:
            break
    return {
        "tokens": tokens,
        "sentences": sentences,
        "seconds": round(elapsed, 3),
        "tokens_per_s": round(tokens / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, help="an exported translation run to benchmark (skips training)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small", help="config to train when no --run-dir")
    parser.add_argument("--runs-dir", type=Path, default=None, help="where the training run goes (default: a temp dir)")
    parser.add_argument("--sentences", type=int, default=32, help="sentences per generation pass")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--beams", type=int, default=4, help="beam width of the beam-search rows")
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--min-seconds", type=float, default=2.0, help="repeat each case at least this long")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for generation")
    parser.add_argument("--out", type=Path, default=RESULTS / "translation.json")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from rich.console import Console
    from rich.table import Table

    console = Console()
    train_wall = None
    if args.run_dir is None:
        runs = args.runs_dir or Path(tempfile.mkdtemp(prefix="mlx-translation-bench-"))
        console.print(f"training preset {args.preset!r} into {runs} ...")
        run_dir, train_wall = train_run(args.preset, runs, "cpu")
        preset = args.preset
    else:
        run_dir, preset = args.run_dir, "given run"
    manifest = json.loads((run_dir / "run.json").read_text())
    if args.run_dir is not None:
        from mlx_translation.config import TranslationConfig

        defaults = TranslationConfig().model_dump(mode="json")
        same = all(manifest["config"][k] == defaults[k] for k in ("data", "model", "train", "seed"))
        preset = "default (given run)" if same else "given run (non-default config)"
    metrics = manifest["metrics"]
    training = {
        "preset": preset,
        "overrides": PRESETS.get(preset, []),
        "config": {k: manifest["config"][k] for k in ("data", "model", "train")},
        "run_dir": str(run_dir),
        "run_wall_s": round(train_wall, 1) if train_wall else None,
        "stage_seconds": {k: v.get("duration_s") for k, v in manifest["stages"].items()},
        "parameters": manifest["records"]["model"]["parameters"],
        "train_records": metrics.get("train_records"),
        "test_records": metrics.get("test_records"),
        "epochs": manifest["config"]["train"]["epochs"],
        "train_seconds": metrics.get("train_seconds"),
        "train_examples_per_s": metrics.get("train_examples_per_s"),
        "bleu_untrained": metrics.get("bleu_untrained"),
        "bleu": metrics.get("bleu"),
        "export_token_identical": f"{metrics.get('export_token_identical')}/{metrics.get('parity_samples')}",
        "export_max_abs_logit_diff": metrics.get("export_max_abs_logit_diff"),
    }

    import torch
    from mlx_translation.exported import ExportedSeq2Seq
    from mlx_translation.files import quiet_transformers
    from mlx_translation.grammar import generate
    from mlx_translation.predict import Translator

    quiet_transformers()
    torch.set_num_threads(args.threads)
    translator = Translator(run_dir / "export" / "hf")
    runner = ExportedSeq2Seq(run_dir / "export" / "torch_export")
    pad, eos = translator.model.config.pad_token_id, translator.model.config.eos_token_id
    texts = [r["translation"]["en"] for r in generate(args.sentences, seed=4242)]  # new sentences of the grammar
    n_new = args.max_new_tokens

    def eager(num_beams):
        return lambda batch: translator.generate(batch, max_new_tokens=n_new, do_sample=False, num_beams=num_beams)

    def exported(num_beams):
        def fn(batch):
            enc = translator.encode(batch)
            if num_beams == 1:
                return runner.greedy(enc["input_ids"], enc["attention_mask"], n_new)
            return runner.beam(enc["input_ids"], enc["attention_mask"], n_new, num_beams)

        return fn

    cases = []
    for backend, make in (("eager", eager), ("exported", exported)):
        for mode, beams in (("greedy", 1), (f"beam{args.beams}", args.beams)):
            for bs in args.batch_sizes:
                console.print(f"  {backend} {mode} batch {bs} ...", end="")
                r = time_generation(make(beams), texts, bs, pad, eos, args.min_seconds)
                console.print(f" {r['tokens_per_s']} tok/s")
                cases.append({"backend": backend, "mode": mode, "batch_size": bs, **r})

    # agreement of the two backends on greedy output over the benchmark sentences
    enc = translator.encode(texts)
    eager_ids = eager(1)(texts)
    exp_ids = runner.greedy(enc["input_ids"], enc["attention_mask"], n_new)
    agree = sum(generated(a, pad, eos) == generated(b, pad, eos) for a, b in zip(eager_ids, exp_ids, strict=True))

    table = Table(title=f"translation generation (CPU, {args.threads} thread(s), max_new_tokens={n_new})")
    for col in ("backend", "mode", "batch", "sentences", "tokens", "seconds", "tokens/s"):
        table.add_column(col, justify="right" if col not in ("backend", "mode") else "left")
    for c in cases:
        table.add_row(
            c["backend"],
            c["mode"],
            str(c["batch_size"]),
            str(c["sentences"]),
            str(c["tokens"]),
            f"{c['seconds']:.2f}",
            f"{c['tokens_per_s']:.1f}",
        )
    console.print(table)
    tt = Table(title="training (from the run's manifest)")
    tt.add_column("metric")
    tt.add_column("value", justify="right")
    for k, v in training.items():
        if k not in ("overrides", "stage_seconds", "run_dir"):
            tt.add_row(k, str(v))
    tt.add_row("stage seconds", ", ".join(f"{k} {v}" for k, v in training["stage_seconds"].items()))
    tt.add_row("greedy eager == exported", f"{agree}/{len(texts)} sentences")
    console.print(tt)

    result = {
        "benchmark": "translation",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": args.threads,
            "note": "2 cores shared with other jobs while measured: timings are noisy",
        },  # fmt: skip
        "training": training,
        "generation": {
            "max_new_tokens": n_new,
            "sentences": len(texts),
            "greedy_backends_agree": f"{agree}/{len(texts)}",
            "cases": cases,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out)
    plot(cases, args.out.with_suffix(".png"), training)
    console.print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def plot(cases: list[dict], path: Path, training: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = sorted({(c["backend"], c["mode"]) for c in cases})
    sizes = sorted({c["batch_size"] for c in cases})
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (backend, mode) in enumerate(series):
        ys = [
            next(
                (c["tokens_per_s"] for c in cases if (c["backend"], c["mode"], c["batch_size"]) == (backend, mode, b)),
                0,
            )
            for b in sizes
        ]
        ax.bar([x + i * width for x in range(len(sizes))], ys, width, label=f"{backend} {mode}")
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(sizes))])
    ax.set_xticklabels([f"batch {b}" for b in sizes])
    ax.set_ylabel("generated tokens / s")
    ax.set_yscale("log")
    ax.set_title(
        f"T5 ({training['parameters'] / 1e6:.2f}M params) generation on CPU; "
        f"BLEU {training['bleu']:.1f} (untrained {training['bleu_untrained']:.1f})",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    plt.close(fig)


if __name__ == "__main__":
    main()
