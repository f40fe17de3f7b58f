"""Training: held-out BLEU beats the untrained model (resume: test_interrupts.py)."""

from .conftest import ok, run_cli

# Enough data and steps for a visible gain in well under a minute of training on 1 core.
SMALL = [
    "data.size=1200",
    "data.vocab_size=400",
    "model.d_model=64",
    "model.d_ff=128",
    "model.num_heads=4",
    "model.num_layers=2",
    "model.dropout=0",
    "train.epochs=4",
    "train.batch_size=16",
    "train.learning_rate=0.003",
    "train.eval_samples=32",
    "train.generation_max_length=32",
]


def test_bleu_beats_untrained_model(tmp_path):
    m = ok(run_cli("train", tmp_path, *SMALL))
    metrics = m.data["metrics"]
    assert metrics["bleu_untrained"] < 1.0
    assert metrics["bleu"] > metrics["bleu_untrained"] + 2.0, metrics
    assert m.data["records"]["trained"] is True
    history = m.data["stages"]["train"]["history"]
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["eval_loss"] < history[0]["eval_loss"]
    assert (m.run_dir / "train" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert any("untrained" in n and "BLEU" in n for n in m.data["notes"])
