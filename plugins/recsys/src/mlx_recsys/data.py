"""Criteo-format TSV: reader (streamed), generated click log, KeyedJaggedTensor batches.

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

from mlx_core import ConfigError, DataError

from .config import N_CATEGORICAL, N_DENSE, RecsysConfig

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
    features = spec["schema"]["features"]
    buf: list[Example] = []
    for ex in iter_split(spec, "train"):
        buf.append(ex)
        if len(buf) == batch_size:
            yield to_batch(buf[rank::world], features)
            buf = []


def eval_batches(spec: dict[str, Any], batch_size: int, split: str = "val") -> Iterator[tuple]:
    features = spec["schema"]["features"]
    buf: list[Example] = []
    for ex in iter_split(spec, split):
        buf.append(ex)
        if len(buf) == batch_size:
            yield to_batch(buf, features)
            buf = []
    if buf:
        yield to_batch(buf, features)


# --- the embedded default: a generated click log ----------------------------------------------
def generate_click_log(path: Path, n: int, users: int, products: int, categories: int, seed: int) -> dict[str, Any]:
    """Write a Criteo-format click log with a hidden preference signal; deterministic by seed.

    Users and products are drawn with power-law (Zipf-like) popularity. A click happens with
    probability sigmoid(user_bias + product_bias + <u, v> + small dense effect - 1), where u, v
    are hidden taste vectors; the "history" bag holds 0-5 products the user likes, so the
    signal is learnable even for rare users. Returns facts for the manifest.
    """
    import numpy as np

    if seed < 0:
        raise ConfigError(f"seed {seed}: the generated click log needs a seed >= 0 (numpy's generator)")
    rng = np.random.default_rng(seed)
    k = 4
    u_vec = rng.normal(0, 1, (users, k))
    c_vec = rng.normal(0, 1, (categories, k))
    p_cat = rng.integers(0, categories, products)
    # a product's taste vector is mostly its category's: the preference is learnable from the
    # (user, category) pairs even for products seen a few times
    p_vec = c_vec[p_cat] + 0.5 * rng.normal(0, 1, (products, k))
    u_bias = rng.normal(0, 0.5, users)
    p_bias = rng.normal(0, 0.5, products)

    def zipf(m: int, a: float, size: int) -> np.ndarray:
        w = 1.0 / np.arange(1, m + 1) ** a
        perm = rng.permutation(m)  # popular ids are not simply the small ones
        return perm[rng.choice(m, size=size, p=w / w.sum())]

    user = zipf(users, 1.05, n)
    prod = zipf(products, 1.1, n)
    # each user's liked products: the best few of a random candidate pool
    pool = rng.integers(0, products, (users, 40))
    scores = np.einsum("uk,upk->up", u_vec, p_vec[pool])
    liked = np.take_along_axis(pool, np.argsort(-scores, axis=1)[:, :10], axis=1)
    hist_len = rng.integers(0, 6, n)
    hour = rng.integers(0, 24, n)
    price = rng.lognormal(3, 1, products).astype(int)
    affinity = np.einsum("nk,nk->n", u_vec[user], p_vec[prod]) / math.sqrt(k)
    logit = 2.0 * affinity + u_bias[user] + p_bias[prod] + 0.3 * np.cos(hour / 24 * 2 * math.pi) - 1.0
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    # per-user / per-product counters (not per-example noise, which a model could memorise)
    u_counts = rng.poisson(3, (users, 5))
    p_counts = rng.poisson(3, (products, 5))
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            u, p = int(user[i]), int(prod[i])
            hist = ",".join(f"{int(h):x}" for h in rng.choice(liked[u], size=hist_len[i], replace=False))
            ints = (
                [str(int(hour[i])), str(int(price[p])), str(int(hist_len[i]))]
                + [str(int(x)) for x in u_counts[u]]
                + [str(int(x)) for x in p_counts[p]]
            )
            if i % 7 == 0:
                ints[5] = ""  # missing integer features, as in Criteo
            cats = [f"{u:x}", f"{p:x}", f"{int(p_cat[p]):x}", hist] + [""] * (N_CATEGORICAL - 4)
            fh.write("\t".join([str(int(label[i]))] + ints + cats) + "\n")
    return {"examples": n, "users": users, "products": products, "ctr": float(label.mean())}


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
    }
