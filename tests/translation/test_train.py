"""Training: held-out BLEU beats the untrained model; resume continues from the last checkpoint."""

from conftest import ok, run_cli

# Enough data and steps for a visible gain in well under a minute of training on 1 core.
SMALL = [
    "data.size=1200",
    "data.vocab_size=400",
    "model.d_model=64",
    "model.d_ff=128",
    "model.num_heads=4",
    "model.num_layers=2",
    "train.epochs=4",
    "train.batch_size=32",
    "train.learning_rate=0.003",
    "train.eval_samples=32",
    "train.generation_max_length=32",
]


def test_bleu_beats_untrained_model(tmp_path):
    m = ok(run_cli("train", tmp_path, *SMALL))
    metrics = m.data["metrics"]
    assert metrics["bleu_untrained"] < 1.0
    assert metrics["bleu"] > metrics["bleu_untrained"] + 3.0, metrics
    assert m.data["records"]["trained"] is True
    history = m.data["stages"]["train"]["history"]
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    assert (m.run_dir / "train" / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_continues_from_last_checkpoint(tmp_path):
    first = ok(run_cli("train", tmp_path))
    steps_1 = first.data["stages"]["train"]["history"]
    assert [h["step"] for h in steps_1] == [1]
    corpus = (first.run_dir / "data" / "corpus.jsonl").read_bytes()
    again = ok(run_cli("train", tmp_path, "train.epochs=2", extra=("--from", str(first.run_dir))))
    assert again.run_dir == first.run_dir
    assert again.data["records"]["resumed_from"].endswith("checkpoint-6")
    assert [h["step"] for h in again.data["stages"]["train"]["history"]] == [1, 2]
    assert (first.run_dir / "data" / "corpus.jsonl").read_bytes() == corpus
    assert again.data["metrics"]["bleu_untrained"] == first.data["metrics"]["bleu_untrained"]
    checkpoints = sorted(p.name for p in (first.run_dir / "train" / "checkpoints").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-12", "checkpoint-6"]
