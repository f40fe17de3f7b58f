"""Criteo-format TSV: reader (streamed) and KeyedJaggedTensor batches (the generated click log: ``sample.py``).

A line is ``label \\t I1..I13 \\t C1..C26``: a 0/1 label, 13 integer features (empty = 0) and
26 categorical features as hex ids. A categorical cell may be empty (an empty bag) or hold
several ids separated by ``data.multi_value_sep`` (a variable-length bag, e.g. a history).
Each id is hashed into its table's rows (``id % num_embeddings``).
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlx_core import DataError

from .config import N_CATEGORICAL, N_DENSE, RecsysConfig
from .sample import generate_click_log

N_COLUMNS = 1 + N_DENSE + N_CATEGORICAL


class BadLine(Exception):
    """One malformed line; ``reason`` is the counter key in the manifest."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Schema:
    """Which columns feed which features, and each feature's table size (plain data: picklable)."""

    features: list[str]  # KJT keys, in the EmbeddingBagCollection's feature order
    columns: list[int]  # categorical column index (0..25) of each feature
    rows: list[int]  # num_embeddings of each feature's table
    sep: str = ","

    @classmethod
    def from_config(cls, cfg: RecsysConfig) -> Schema:
        feats, cols, rows = [], [], []
        for t in cfg.model.tables:
            for f in t.feature_names:
                feats.append(f)
                cols.append(cfg.data.categorical_names.index(f))
                rows.append(t.num_embeddings)
        return cls(feats, cols, rows, cfg.data.multi_value_sep)


@dataclass
class Example:
    label: float
    dense: list[float]
    sparse: list[list[int]]  # one bag of hashed ids per schema feature


@dataclass
class ScanStats:
    lines: int = 0
    good: int = 0
    skipped: Counter = field(default_factory=Counter)
    positives: int = 0


def parse_line(line: str, schema: Schema) -> Example:
    parts = line.rstrip("\r\n").split("\t")
    if len(parts) != N_COLUMNS:
        raise BadLine(
            "column_count",
            f"expected {N_COLUMNS} tab-separated columns (label, {N_DENSE} integer, {N_CATEGORICAL} categorical), got {len(parts)}",
        )
    label = parts[0].strip()
    if label not in ("0", "1"):
        raise BadLine("label", f"label {label!r} is not 0 or 1")
    dense = []
    for j in range(N_DENSE):
        cell = parts[1 + j].strip()
        if not cell:
            dense.append(0.0)
            continue
        try:
            v = int(cell)
        except ValueError:
            raise BadLine("dense", f"integer column I{j + 1}: {cell!r} is not an integer") from None
        # the usual Criteo transform: log(1 + x), negative counts clipped to 0
        try:
            dense.append(math.log1p(v) if v > 0 else 0.0)
        except OverflowError:  # over ~1.8e308: not a float, so no count
            raise BadLine("dense", f"integer column I{j + 1}: {cell!r} is too large for a float") from None
    sparse = []
    for f, col, rows in zip(schema.features, schema.columns, schema.rows, strict=True):
        cell = parts[1 + N_DENSE + col].strip()
        bag = []
        if cell:
            for tok in cell.split(schema.sep):
                tok = tok.strip()
                if tok.startswith("-"):
                    raise BadLine(
                        "negative_id",
                        f"negative id {tok!r} in categorical column C{col + 1} ({f}); ids must be non-negative hex",
                    )
                try:
                    bag.append(int(tok, 16) % rows)
                except ValueError:
                    raise BadLine("bad_id", f"id {tok!r} in categorical column C{col + 1} ({f}) is not hex") from None
        sparse.append(bag)
    return Example(float(label == "1"), dense, sparse)


def decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadLine("encoding", "not UTF-8 text (a binary file?)") from None


def read_tsv(
    path: str | Path, schema: Schema, on_bad_line: str = "error", stats: ScanStats | None = None
) -> Iterator[Example]:
    """Stream the good examples of a TSV; bad lines raise DataError (file:line) or are counted."""
    path = Path(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror}") from None
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            if stats is not None:
                stats.lines += 1
            if not raw.strip():
                if stats is not None:
                    stats.skipped["empty"] += 1
                continue
            try:
                ex = parse_line(decode(raw), schema)
            except BadLine as bad:
                if on_bad_line == "error":
                    raise DataError(f"{path}:{lineno}: {bad} (set data.on_bad_line=skip to skip such lines)") from None
                if stats is not None:
                    stats.skipped[bad.reason] += 1
                continue
            if stats is not None:
                stats.good += 1
                stats.positives += int(ex.label)
            yield ex


def _period(val_fraction: float) -> int:
    inv = 1 / val_fraction
    # a subnormal val_fraction makes 1/val_fraction infinite: nothing is held out then
    return max(2, round(inv)) if math.isfinite(inv) else sys.maxsize


def is_val(index: int, val_fraction: float) -> bool:
    """Deterministic held-out split over good examples: every k-th is held out."""
    k = _period(val_fraction)
    return index % k == k - 1


def split_counts(n_good: int, val_fraction: float) -> tuple[int, int]:
    k = _period(val_fraction)
    n_val = n_good // k
    return n_good - n_val, n_val


def iter_split(spec: dict[str, Any], split: str) -> Iterator[Example]:
    schema = Schema(**spec["schema"])
    for i, ex in enumerate(read_tsv(spec["path"], schema, spec["on_bad_line"])):
        if is_val(i, spec["val_fraction"]) == (split == "val"):
            yield ex


def to_batch(examples: list[Example], features: list[str]):
    """(dense [B, 13] float, KeyedJaggedTensor of the bags, labels [B] float)."""
    import torch
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    lengths: list[int] = []
    values: list[int] = []
    for k in range(len(features)):
        for ex in examples:
            bag = ex.sparse[k]
            lengths.append(len(bag))
            values.extend(bag)
    kjt = KeyedJaggedTensor(
        keys=list(features),
        values=torch.tensor(values, dtype=torch.int64),
        lengths=torch.tensor(lengths, dtype=torch.int64),
    )
    dense = torch.tensor([ex.dense for ex in examples], dtype=torch.float32).reshape(len(examples), N_DENSE)
    labels = torch.tensor([ex.label for ex in examples], dtype=torch.float32)
    return dense, kjt, labels


def train_batches(spec: dict[str, Any], batch_size: int, rank: int = 0, world: int = 1) -> Iterator[tuple]:
    """This rank's share of each full global batch (examples round-robin over ranks).

    Every rank yields the same number of batches (the last partial global batch is dropped),
    which the sharded model's collectives need.
    """
    if spec.get("cache"):  # the parsed arrays (cache.py): no text parsing per epoch
        from .cache import CachedLog
        from .cache import train_batches as cached

        yield from cached(CachedLog.open(spec["cache"]), _period(spec["val_fraction"]), batch_size, rank, world)
        return
    features = spec["schema"]["features"]
    buf: list[Example] = []
    for ex in iter_split(spec, "train"):
        buf.append(ex)
        if len(buf) == batch_size:
            yield to_batch(buf[rank::world], features)
            buf = []


def eval_batches(spec: dict[str, Any], batch_size: int, split: str = "val") -> Iterator[tuple]:
    if spec.get("cache"):
        from .cache import CachedLog
        from .cache import eval_batches as cached

        yield from cached(CachedLog.open(spec["cache"]), _period(spec["val_fraction"]), batch_size, split)
        return
    features = spec["schema"]["features"]
    buf: list[Example] = []
    for ex in iter_split(spec, split):
        buf.append(ex)
        if len(buf) == batch_size:
            yield to_batch(buf, features)
            buf = []
    if buf:
        yield to_batch(buf, features)


# --- the data stage ---------------------------------------------------------------------------
def prepare(ctx: Any) -> dict[str, Any]:
    """Generate (or locate) the TSV, scan it once (bad lines, counts) and describe the splits."""
    cfg: RecsysConfig = ctx.config
    schema = Schema.from_config(cfg)
    generated = ctx.path("data", "clicks.tsv")
    if cfg.data.path:
        path = Path(cfg.data.path)
        if not path.is_file():
            raise DataError(f"data.path {path} is not a file")
    elif ctx.resumed and generated.exists():
        path = generated
    else:
        with ctx.atomic_path("data", "clicks.tsv") as tmp:
            facts = generate_click_log(
                tmp, cfg.data.examples, cfg.data.users, cfg.data.products, cfg.data.categories, ctx.seed
            )
        path = generated
        ctx.add_artifact(path, kind="dataset", format="criteo-tsv", generated=True, **facts)
        ctx.note("data: generated click log (power-law popularity, hidden user/product preferences)")
    stats = ScanStats()
    cache_folder = None
    if cfg.data.cache:
        cache_folder = _build_cache(ctx, path, schema, stats)
    else:
        with ctx.progress(f"scanning {path.name}") as advance:
            for _ in read_tsv(path, schema, cfg.data.on_bad_line, stats):
                if stats.good % 1000 == 0:
                    advance(1000)
    if stats.good == 0:
        raise DataError(f"{path}: no usable examples ({stats.lines} lines)")
    n_train, n_val = split_counts(stats.good, cfg.data.val_fraction)
    if n_val == 0 or n_train < cfg.data.batch_size:
        raise DataError(
            f"{path}: {stats.good} usable examples are too few for data.batch_size={cfg.data.batch_size} "
            f"and data.val_fraction={cfg.data.val_fraction}"
        )
    skipped = dict(stats.skipped)
    ctx.record("skipped_lines", sum(skipped.values()))
    ctx.record("skipped_by_reason", skipped)
    if skipped:
        ctx.note(f"data: skipped {sum(skipped.values())} bad lines of {path} ({skipped})")
    ctx.log_metrics({"lines": stats.lines, "examples": stats.good, "train_examples": n_train, "val_examples": n_val,
                     "ctr": stats.positives / stats.good, "skipped_lines": sum(skipped.values())})  # fmt: skip
    return {
        "path": str(path.resolve()),
        "schema": {"features": schema.features, "columns": schema.columns, "rows": schema.rows, "sep": schema.sep},
        "on_bad_line": cfg.data.on_bad_line,
        "val_fraction": cfg.data.val_fraction,
        "n_train": n_train,
        "n_val": n_val,
        "cache": str(cache_folder) if cache_folder else None,
    }


def _build_cache(ctx: Any, path: Path, schema: Schema, stats: ScanStats) -> Path:
    """Parse ``path`` once into the memory-mapped cache (cache.py), or find it already parsed."""
    from .cache import build

    cfg = ctx.config.data
    root = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else ctx.path("data", "cache")
    with ctx.progress(f"parsing {path.name} into {root}") as advance:
        folder, built = build(path, schema, cfg.on_bad_line, root, stats, advance)
    ctx.log(f"[data] {'parsed' if built else 'reusing the parsed cache of'} {path.name}: {folder}")
    ctx.record("data_cache", {"folder": str(folder), "built": built, "examples": stats.good})
    return folder
