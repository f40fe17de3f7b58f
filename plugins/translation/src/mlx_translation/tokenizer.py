"""Tokenizers: a local checkpoint's own (AutoTokenizer) or a SentencePiece-Unigram one trained here.

The trained tokenizer is a ``tokenizers`` Unigram model with T5's special-token layout
(``<pad>``=0, ``</s>``=1, ``<unk>``=2) wrapped in ``T5Tokenizer`` (``T5TokenizerFast`` is the same
class in transformers 5), saved with ``save_pretrained`` and read back through ``AutoTokenizer``,
so every later consumer (trainer, export, ``pipeline``-style reload, predict) loads it the standard way.
"""

from __future__ import annotations

import json
from pathlib import Path

from mlx_core import ConfigError, DataError

from .files import atomic_dir

SPECIAL = ["<pad>", "</s>", "<unk>"]


def load_pretrained_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    p = Path(path).expanduser()
    if not p.is_dir():
        raise ConfigError(
            f"model.path {str(path)!r} is not a folder; expected a local checkpoint folder (config.json, weights, tokenizer)"
        )
    try:
        return AutoTokenizer.from_pretrained(str(p), local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - one line for whatever the library raises on a broken folder
        raise DataError(
            f"model.path {str(path)!r}: no loadable tokenizer ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from None


def train_unigram(texts: list[str], vocab_size: int):
    """A T5-style tokenizer trained on ``texts`` with a SentencePiece-Unigram model."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import T5Tokenizer

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(texts, trainer=trainer)
    vocab = [tuple(piece) for piece in json.loads(tok.to_str())["model"]["vocab"]]
    assert [p for p, _ in vocab[:3]] == SPECIAL, vocab[:3]
    vocab = vocab[:3] + canonical_pieces(vocab[3:])
    wrapped = T5Tokenizer(vocab=vocab, extra_ids=0)
    wrapped.backend_tokenizer.normalizer = normalizers.NFKC()
    return wrapped


def canonical_pieces(pieces: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """The trainer's pieces in an order that depends only on the corpus.

    ``UnigramTrainer`` is not reproducible run to run: the last bits of the scores vary, and the
    single characters it appends after the learned pieces (scores 1e-4 apart, below all others)
    come in hash-map order. Rounded scores, ties broken by the piece, and the appended characters
    sorted make the same corpus give the same token ids, which repeated and resumed runs rely on.
    """
    rounded = [(p, round(score, 6)) for p, score in pieces]
    tail = len(rounded)
    while (
        tail > 0
        and len(rounded[tail - 1][0]) == 1
        and (tail == len(rounded) or rounded[tail - 1][1] - rounded[tail][1] <= 2e-4)
    ):
        tail -= 1
    learned = sorted(rounded[:tail], key=lambda ps: (-ps[1], ps[0]))
    chars = sorted(p for p, _ in rounded[tail:])
    scores = sorted((s for _, s in rounded[tail:]), reverse=True)
    return learned + list(zip(chars, scores, strict=True))


def load_or_train_tokenizer(ctx, train_split, prefix: str):
    from transformers import AutoTokenizer

    cfg = ctx.config
    if cfg.model.path:
        tok = load_pretrained_tokenizer(cfg.model.path)
        ctx.record("tokenizer", {"kind": "from model.path", "class": type(tok).__name__, "vocab": len(tok)})
        return tok
    folder = ctx.path(*("data", "tokenizer"))
    from .data import reuses_files

    if not (reuses_files(ctx) and (folder / "tokenizer.json").exists()):
        src, tgt = cfg.data.source_lang, cfg.data.target_lang
        texts = [prefix + ex[src] for ex in train_split["translation"]] + [ex[tgt] for ex in train_split["translation"]]
        tok = train_unigram(texts, cfg.data.vocab_size)
        with atomic_dir(folder) as tmp:
            tok.save_pretrained(str(tmp))
        ctx.add_artifact(folder / "tokenizer.json", kind="tokenizer", vocab=len(tok), trained_on="train split")
    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    ctx.record(
        "tokenizer", {"kind": "sentencepiece-unigram (trained here)", "class": type(tok).__name__, "vocab": len(tok)}
    )
    return tok
