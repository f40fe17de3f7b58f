"""Data stage: opus_books-shaped records -> validated -> train/test split -> tokenised with the T5 prefix.

Readers: ``.jsonl``/``.json`` (one record per line), ``.parquet``, a ``datasets.save_to_disk``
folder (a ``Dataset`` or a ``DatasetDict`` with a ``train`` split, as ``load_dataset("opus_books",
"en-fr")`` gives), or a folder in the Hub repository layout of opus_books (``en-fr/train-*.parquet``
shards, as a ``git clone`` / ``hf download`` of the dataset repository leaves it). The embedded
default is the generated corpus of ``grammar.py`` written as JSONL into the run directory and read
back by the same JSONL reader.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlx_core import ConfigError, DataError
from mlx_core.jsonl import lone_surrogate
from mlx_core.jsonl import read_jsonl as read_jsonl_records

from . import grammar, offline

offline()  # before transformers or datasets is first imported: nothing may be downloaded

LANGUAGE_NAMES = {
    "en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "ro": "Romanian", "ru": "Russian", "fi": "Finnish", "sv": "Swedish", "no": "Norwegian",
    "da": "Danish", "pl": "Polish", "hu": "Hungarian", "el": "Greek", "eo": "Esperanto", "ca": "Catalan",
}  # fmt: skip

CORPUS = ("data", "corpus.jsonl")
TOKENIZER_DIR = ("data", "tokenizer")


def task_prefix(source: str, target: str) -> str:
    """The T5 task prefix, e.g. ``translate English to French: ``."""
    return f"translate {LANGUAGE_NAMES.get(source, source)} to {LANGUAGE_NAMES.get(target, target)}: "


@dataclass
class Corpus:
    """Validated records plus what validation dropped."""

    records: list[dict[str, Any]]
    skipped: dict[str, int] = field(default_factory=lambda: {"missing_language": 0, "empty_text": 0})
    source: str = ""


# --- readers --------------------------------------------------------------------------------
def read_jsonl(path: Path) -> list[Any]:
    """Records of a JSON Lines file through the core's reader (``mlx_core.jsonl``: lines end at
    "\\n", JSON-whitespace lines are blank, errors name file:line). Lone surrogates are kept:
    ``validate`` skips such records or names them, as ``data.on_invalid`` says."""
    return read_jsonl_records(path, expected="one opus_books record per line", lone_surrogates="keep")


def read_parquet(path: Path) -> list[Any]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several unrelated types for broken files
        raise DataError(
            f"{path}: not a readable Parquet file ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from None


def read_disk(path: Path) -> list[Any]:
    from datasets import Dataset, DatasetDict, load_from_disk

    try:
        # read into memory, not memory-mapped: an .arrow file whose lengths point past its end (a
        # torn copy, a flipped byte) would otherwise kill the process with SIGBUS, not raise
        ds = load_from_disk(str(path), keep_in_memory=True)
    except Exception as exc:  # noqa: BLE001 - any failure means: not a save_to_disk folder
        raise DataError(
            f"{path}: not a datasets.save_to_disk folder ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from None
    if isinstance(ds, DatasetDict):
        if "train" not in ds:
            raise DataError(
                f"{path}: DatasetDict has splits {sorted(ds)}; expected a 'train' split (as opus_books has)"
            )
        ds = ds["train"]
    assert isinstance(ds, Dataset)
    try:
        ds.data.table.validate(full=True)  # bad offsets or UTF-8: an error here, not a crash in to_list
        return ds.to_list()
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several unrelated types for damaged data
        raise DataError(
            f"{path}: the datasets.save_to_disk data is damaged ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from None


def _is_save_to_disk(p: Path) -> bool:
    return (p / "dataset_dict.json").is_file() or (p / "dataset_info.json").is_file() or (p / "state.json").is_file()


def shard_files(folder: Path, source: str, target: str) -> list[Path]:
    """The train shards of a Hub-layout folder (``opus_books/en-fr/train-00000-of-00001.parquet``).

    Looks in ``folder``, then in a ``<src>-<tgt>`` or ``<tgt>-<src>`` config subfolder; files whose
    name starts with ``train`` win, otherwise every ``.parquet``/``.jsonl``/``.json`` file is read.
    """
    for sub in (folder, folder / f"{source}-{target}", folder / f"{target}-{source}"):
        if not sub.is_dir():
            continue
        files = sorted(f for f in sub.iterdir() if f.is_file() and f.suffix.lower() in (".parquet", ".jsonl", ".json"))
        train = [f for f in files if f.name.startswith("train")]
        if train or files:
            return train or files
    return []


def read_records(path: str | Path, source: str = "en", target: str = "fr") -> list[Any]:
    """Raw rows from a JSONL/JSON or Parquet file, a save_to_disk folder or a Hub-layout shard folder."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(
            f"data.path {str(path)!r} does not exist; expected a .jsonl, .parquet file or a datasets.save_to_disk folder"
        )
    if p.is_dir():
        if _is_save_to_disk(p):
            return read_disk(p)
        shards = shard_files(p, source, target)
        if not shards:
            raise DataError(
                f"data.path {str(path)!r} is a folder with neither a datasets.save_to_disk dataset nor .parquet/.jsonl shards "
                f"(looked in it and in {source}-{target}/, {target}-{source}/)"
            )
        rows: list[Any] = []
        for shard in shards:
            rows += read_parquet(shard) if shard.suffix.lower() == ".parquet" else read_jsonl(shard)
        return rows
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return read_jsonl(p)
    if suffix == ".parquet":
        return read_parquet(p)
    raise DataError(
        f"data.path {str(path)!r} has suffix {suffix!r}; expected .jsonl, .json, .parquet or a datasets.save_to_disk folder"
    )


# --- validation -------------------------------------------------------------------------------
def validate(rows: list[Any], source: str, target: str, on_invalid: str, where: str) -> Corpus:
    """Keep records with non-empty source and target texts; the first bad one is an error unless skipping."""
    out = Corpus(records=[], source=where)

    def skip(kind: str, problem: str) -> None:
        """Count the record as skipped under ``kind``, or raise naming ``problem`` unless skipping."""
        if on_invalid != "skip":
            raise DataError(f"{problem}; fix the record or set data.on_invalid=skip")
        out.skipped[kind] = out.skipped.get(kind, 0) + 1

    for index, row in enumerate(rows):
        rid = row.get("id", index) if isinstance(row, dict) else index
        name = f"record {index} (id {rid!r}) of {where}"
        tr = row.get("translation") if isinstance(row, dict) else None
        if not isinstance(tr, dict):
            raise DataError(
                f"{name}: has no 'translation' mapping; expected {{'id': ..., 'translation': {{{source!r}: ..., {target!r}: ...}}}}"
            )
        missing = [lang for lang in (source, target) if tr.get(lang) is None]
        if missing:
            skip("missing_language", f"{name}: missing language key {missing[0]!r} (has {sorted(tr)})")
            continue
        texts = {lang: tr[lang] for lang in (source, target)}
        # a "\ud800" escape is valid JSON but no Unicode text: Arrow (Dataset.from_list) cannot hold it
        fields = {"id": str(rid), **texts}
        unicode = [k for k, text in fields.items() if isinstance(text, str) and lone_surrogate(text)]
        if unicode:
            skip("invalid_text", f"{name}: {unicode[0]!r} {fields[unicode[0]]!r:.60} holds a lone surrogate escape, "
                 "not Unicode text")  # fmt: skip
            continue
        bad = [lang for lang, text in texts.items() if not isinstance(text, str) or not text.strip()]
        if bad:
            skip("empty_text", f"{name}: empty {bad[0]!r} text {texts[bad[0]]!r}")
            continue
        out.records.append(
            {"id": str(rid), "translation": {source: texts[source].strip(), target: texts[target].strip()}}
        )
    return out


def load_corpus(ctx) -> Corpus:
    cfg = ctx.config.data
    src, tgt = cfg.source_lang, cfg.target_lang
    if src == tgt:
        raise ConfigError(f"data.source_lang and data.target_lang are both {src!r}; expected two different languages")
    corpus_path = ctx.path(*CORPUS)
    if cfg.path:
        rows, where = read_records(cfg.path, src, tgt), cfg.path
    else:
        if {src, tgt} != {"en", "fr"}:
            raise ConfigError(
                f"the generated corpus is English/French only, got data.source_lang={src!r}, data.target_lang={tgt!r}; set data.path for other pairs"
            )
        if not (reuses_files(ctx) and corpus_path.exists()):
            records = grammar.generate(cfg.size, seed=ctx.seed)
            with ctx.atomic_path(*CORPUS) as tmp:
                tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
            ctx.add_artifact(corpus_path, kind="dataset", format="jsonl", records=len(records), generated=True)
        rows, where = read_jsonl(corpus_path), str(corpus_path)
    corpus = validate(rows, src, tgt, cfg.on_invalid, where)
    skipped = sum(corpus.skipped.values())
    if skipped:
        ctx.record("skipped_records", corpus.skipped)
        ctx.note(f"skipped {skipped} invalid records of {where} ({corpus.skipped})")
    if len(corpus.records) < 5:
        raise DataError(
            f"{where}: {len(corpus.records)} usable records (of {len(rows)}); expected at least 5 for a train/test split"
        )
    return corpus


# --- tokenisation -------------------------------------------------------------------------------
def tokenize(ctx, splits, tokenizer, prefix: str):
    """``Dataset.map(batched=True)`` with ``text_target``; truncation to max_length, counted."""
    cfg = ctx.config.data
    src, tgt, max_length = cfg.source_lang, cfg.target_lang, cfg.max_length

    def preprocess(batch):
        inputs = [prefix + ex[src] for ex in batch["translation"]]
        targets = [ex[tgt] for ex in batch["translation"]]
        full = tokenizer(inputs, text_target=targets)
        enc = tokenizer(inputs, text_target=targets, max_length=max_length, truncation=True)
        enc["source_tokens"] = [len(x) for x in full["input_ids"]]
        enc["target_tokens"] = [len(x) for x in full["labels"]]
        return enc

    columns = splits["train"].column_names
    tokenized = splits.map(preprocess, batched=True, remove_columns=columns, desc="tokenising")
    counts = {}
    for name, ds in tokenized.items():
        src_len, tgt_len = ds["source_tokens"], ds["target_tokens"]
        counts[name] = {"source": sum(n > max_length for n in src_len), "target": sum(n > max_length for n in tgt_len)}
        if cfg.on_too_long == "error" and (counts[name]["source"] or counts[name]["target"]):
            i = next(i for i, (a, b) in enumerate(zip(src_len, tgt_len, strict=True)) if max(a, b) > max_length)
            rid = splits[name][i]["id"]
            raise DataError(
                f"record id {rid!r} ({name} split) has {max(src_len[i], tgt_len[i])} tokens, more than data.max_length={max_length}; "
                "raise data.max_length or set data.on_too_long=truncate"
            )
    truncated = sum(c["source"] + c["target"] for c in counts.values())
    ctx.record("truncated", counts)
    if truncated:
        ctx.note(f"truncated {truncated} sentences longer than {max_length} tokens ({counts})")
    return tokenized.remove_columns(["source_tokens", "target_tokens"]), counts


def reuses_files(ctx) -> bool:
    """Whether this process reads the corpus and tokenizer an earlier writer left: under
    ``--from``, or as a later rank of a launched job on a node whose first rank wrote them."""
    return ctx.resumed or ctx.dist.local_rank > 0


def build(ctx) -> dict[str, Any]:
    """The data stage. Launched on N processes (``mlx run --nproc N``), each node's first rank
    builds it first and the node's other ranks then read its files (accelerate's
    ``local_main_process_first``; the process group it starts is the one the Trainer uses)."""
    if ctx.dist.world_size == 1:
        return _build(ctx)
    from datetime import timedelta

    from accelerate import PartialState

    state = PartialState(cpu=ctx.device == "cpu", timeout=timedelta(seconds=ctx.dist.timeout_s))
    with state.local_main_process_first():
        return _build(ctx)


def _build(ctx) -> dict[str, Any]:
    cfg = ctx.config.data
    if ctx.config.model.path:  # a wrong checkpoint folder fails before any data work
        from .model import check_folder

        check_folder(ctx.config.model.path)
    corpus = load_corpus(ctx)  # pure Python: bad records fail fast, before heavy imports

    from datasets import Dataset

    from .files import quiet_transformers
    from .tokenizer import load_or_train_tokenizer

    quiet_transformers()

    prefix = cfg.prefix if cfg.prefix is not None else task_prefix(cfg.source_lang, cfg.target_lang)
    dataset = Dataset.from_list(corpus.records)
    splits = dataset.train_test_split(test_size=cfg.test_size, seed=ctx.seed)
    if len(splits["test"]) < 1 or len(splits["train"]) < 1:
        raise DataError(f"{corpus.source}: a split is empty with data.test_size={cfg.test_size}; need more records")
    tokenizer = load_or_train_tokenizer(ctx, splits["train"], prefix)
    tokenized, truncated = tokenize(ctx, splits, tokenizer, prefix)
    ctx.record("prefix", prefix)
    ctx.log_metrics(
        {"records": len(corpus.records), "train_records": len(splits["train"]), "test_records": len(splits["test"])}
    )
    return {"raw": splits, "tokenized": tokenized, "tokenizer": tokenizer, "prefix": prefix, "truncated": truncated}
