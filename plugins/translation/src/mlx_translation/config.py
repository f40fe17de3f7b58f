"""The translation plugin's config. Pydantic only: no torch/transformers imports here."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlx_core import Section

LANG_PATTERN = r"^[a-z]{2,3}([_-][A-Za-z]{2,4})?$"


class DataConfig(Section):
    path: str | None = Field(
        None,
        description="opus_books-shaped records ({'id', 'translation': {src: .., tgt: ..}}) as a .jsonl/.json "
        "file, a .parquet file, a datasets.save_to_disk folder or a Hub-layout folder (en-fr/train-*.parquet); "
        "unset: the generated EN->FR corpus",
    )
    source_lang: str = Field(
        "en", pattern=LANG_PATTERN, description="key of the source text in each record's translation"
    )
    target_lang: str = Field(
        "fr", pattern=LANG_PATTERN, description="key of the target text in each record's translation"
    )
    size: int = Field(3000, ge=10, le=200_000, description="number of distinct sentence pairs the generated corpus has")
    test_size: float = Field(0.2, gt=0, lt=1, description="held-out fraction (datasets train_test_split)")
    max_length: int = Field(
        128, ge=8, le=1024, description="token limit for inputs and targets; longer ones are truncated"
    )
    prefix: str | None = Field(
        None, description="T5 task prefix; unset: 'translate <Source> to <Target>: ' from the languages"
    )
    on_invalid: Literal["error", "skip"] = Field(
        "error",
        description="records missing a language key or with an empty text: stop with an error, or skip and count",
    )
    on_too_long: Literal["truncate", "error"] = Field(
        "truncate", description="sentences longer than max_length tokens: truncate and count, or stop with an error"
    )
    vocab_size: int = Field(
        600,
        ge=50,
        le=64_000,
        description="vocabulary size of the SentencePiece-Unigram tokenizer trained from scratch",
    )


class ModelConfig(Section):
    path: str | None = Field(
        None,
        description="local folder with a seq2seq checkpoint (config.json, weights, tokenizer), e.g. t5-small; unset: small random T5",
    )
    d_model: int = Field(64, ge=16, le=4096, description="hidden size of the from-scratch T5")
    num_layers: int = Field(2, ge=1, le=48, description="encoder layers (and decoder layers) of the from-scratch T5")
    num_heads: int = Field(
        4, ge=1, le=64, description="attention heads of the from-scratch T5 (d_model must divide by it)"
    )
    d_ff: int = Field(128, ge=16, le=16_384, description="feed-forward size of the from-scratch T5")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout rate of the from-scratch T5")


class TrainConfig(Section):
    epochs: float = Field(
        8, gt=0, le=1000, description="passes over the training split (Seq2SeqTrainingArguments.num_train_epochs)"
    )
    batch_size: int = Field(16, ge=1, le=4096, description="per-device train batch size (eval: at least 64)")
    learning_rate: float | None = Field(
        None, gt=0, lt=1, description="AdamW learning rate; unset: 2e-5 for a pretrained checkpoint, 3e-3 from scratch"
    )
    weight_decay: float = Field(0.01, ge=0, le=1, description="AdamW weight decay")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="fraction of steps with linear learning-rate warm-up")
    eval_samples: int = Field(
        200,
        ge=0,
        description="held-out sentences scored (generate + SacreBLEU) after each epoch; 0: the whole test split",
    )
    generation_max_length: int = Field(48, ge=2, le=1024, description="max tokens generated when scoring BLEU")
    save_total_limit: int = Field(3, ge=1, le=100, description="checkpoints kept under train/checkpoints")
    fp16: bool = Field(True, description="mixed precision on CUDA (never on CPU)")
    num_threads: int = Field(
        1, ge=0, le=256, description="torch CPU threads (0: torch's default); 1 is fastest on a busy 2-core machine"
    )


class ExportConfig(Section):
    torch_export: bool = Field(
        True,
        description="write torch.export programs (encoder, decoder, cached decoder steps) and check them against eager",
    )
    parity_samples: int = Field(
        16, ge=1, le=1000, description="held-out sentences whose greedy output must be token-identical"
    )
    parity_max_new_tokens: int = Field(40, ge=1, le=512, description="max new tokens in the parity check")


class PredictConfig(Section):
    backend: Literal["eager", "exported"] = Field(
        "eager", description="eager: the save_pretrained model with generate(); exported: the torch.export programs"
    )
    max_new_tokens: int = Field(40, ge=1, le=1024, description="max tokens generated per sentence")
    do_sample: bool = Field(False, description="sample instead of greedy/beam search (eager backend only)")
    top_k: int = Field(30, ge=0, description="top-k filtering when sampling")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus filtering when sampling")
    temperature: float = Field(1.0, gt=0, le=100, description="softmax temperature when sampling")
    num_beams: int = Field(1, ge=1, le=64, description="beam width (1: greedy)")
    batch_size: int = Field(16, ge=1, le=4096, description="sentences per generate() call")


class TranslationConfig(Section):
    seed: int = Field(0, ge=0, lt=2**63, description="seed of the corpus, the split, the init and the trainer")
    data: DataConfig = Field(default_factory=DataConfig, description="data stage")
    model: ModelConfig = Field(default_factory=ModelConfig, description="model stage")
    train: TrainConfig = Field(default_factory=TrainConfig, description="train stage")
    export: ExportConfig = Field(default_factory=ExportConfig, description="export stage")
    predict: PredictConfig = Field(default_factory=PredictConfig, description="mlx predict")
