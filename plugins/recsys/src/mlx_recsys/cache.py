"""Parse a Criteo-format TSV once into memory-mapped numpy arrays; every epoch on every rank
reads those instead of parsing text again.

A cache folder ``<cache_root>/<key>/`` holds raw little-endian arrays (``np.memmap``):

  labels.f32   [N]       0/1
  dense.f32    [N, 13]   log(1 + x) of the integer features (missing = 0)
  lengths.i32  [N, F]    ids per (example, feature) bag, F = the schema's features
  offsets.i64  [N + 1]   where each example's ids start in values
  values.i64   [total]   hashed ids (id % rows of the feature's table), example-major

and ``meta.json`` (shapes, the source file, the scan counts). The key is a sha256 of the source
file's size, mtime and the sha256 of its first 64 KiB, the schema (features, columns, rows,
separator), the bad-line policy and the format version: another file, an edited file or another
table size is another folder; the same file is parsed once, in any run that points
``data.cache_dir`` at the same folder. The folder is written under a temporary name and renamed
into place (``mlx_core.runs.atomic_dir``), so a killed build leaves no half cache.

Parsing is the text reader's own (``data.read_tsv``): the same one-line ``file:line`` errors.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlx_core.runs import atomic_dir

FORMAT = 1
HEADER_BYTES = 65536
CHUNK = 65536  # examples parsed between two writes


def source_facts(path: Path) -> dict[str, Any]:
    st = path.stat()
    with open(path, "rb") as fh:
        head = hashlib.sha256(fh.read(HEADER_BYTES)).hexdigest()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "header_sha256": head}


def cache_key(facts: dict[str, Any], schema: dict[str, Any], on_bad_line: str) -> str:
    ident = {"format": FORMAT, "size": facts["size"], "mtime_ns": facts["mtime_ns"],
             "header_sha256": facts["header_sha256"], "schema": schema, "on_bad_line": on_bad_line}  # fmt: skip
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]


def build(path: Path, schema: Any, on_bad_line: str, root: Path, stats: Any, advance: Any = None) -> tuple[Path, bool]:
    """The cache folder of ``path`` under ``root`` (built now unless present); True when built.
    ``stats`` (a ``data.ScanStats``) gets the scan counts, from the build or from meta.json."""
    from . import data as D

    spec_schema = {"features": schema.features, "columns": schema.columns, "rows": schema.rows, "sep": schema.sep}
    facts = source_facts(path)
    folder = root / cache_key(facts, spec_schema, on_bad_line)
    if (folder / "meta.json").is_file():
        meta = json.loads((folder / "meta.json").read_text())
        stats.lines, stats.good, stats.positives = meta["lines"], meta["examples"], meta["positives"]
        stats.skipped.update(meta["skipped"])
        return folder, False
    nf = len(schema.features)
    with atomic_dir(folder) as tmp:
        files = {name: open(tmp / name, "wb") for name in ("labels.f32", "dense.f32", "lengths.i32", "values.i64")}
        offsets = [np.zeros(1, dtype="<i8")]
        start = 0
        try:
            batch: list[Any] = []
            for ex in D.read_tsv(path, schema, on_bad_line, stats):
                batch.append(ex)
                if len(batch) == CHUNK:
                    start = _write(files, offsets, batch, nf, start)
                    batch = []
                    if advance is not None:
                        advance(CHUNK)
            start = _write(files, offsets, batch, nf, start)
        finally:
            for fh in files.values():
                fh.close()
        np.concatenate(offsets).astype("<i8").tofile(tmp / "offsets.i64")
        meta = {"format": FORMAT, "source": facts, "schema": spec_schema, "on_bad_line": on_bad_line,
                "examples": stats.good, "lines": stats.lines, "positives": stats.positives,
                "skipped": dict(stats.skipped), "features": nf, "values": start}  # fmt: skip
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    return folder, True


def _write(files: dict[str, Any], offsets: list[np.ndarray], batch: list[Any], nf: int, start: int) -> int:
    if not batch:
        return start
    files["labels.f32"].write(np.asarray([ex.label for ex in batch], dtype="<f4").tobytes())
    files["dense.f32"].write(np.asarray([ex.dense for ex in batch], dtype="<f4").reshape(len(batch), -1).tobytes())
    lengths = np.asarray([[len(bag) for bag in ex.sparse] for ex in batch], dtype="<i4").reshape(len(batch), nf)
    files["lengths.i32"].write(lengths.tobytes())
    files["values.i64"].write(np.fromiter((i for ex in batch for bag in ex.sparse for i in bag), dtype="<i8").tobytes())
    offsets.append(start + np.cumsum(lengths.sum(1), dtype="<i8"))
    return int(offsets[-1][-1])


@dataclass
class CachedLog:
    """The memory-mapped arrays of one cache folder (opened by each rank; the OS shares the pages)."""

    folder: Path
    labels: np.ndarray
    dense: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray
    values: np.ndarray
    features: list[str]

    @classmethod
    def open(cls, folder: str | Path) -> CachedLog:
        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text())
        n, nf = meta["examples"], meta["features"]

        def mm(name: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
            if not all(shape):  # np.memmap refuses empty files
                return np.zeros(shape, dtype=dtype)
            return np.memmap(folder / name, dtype=dtype, mode="r", shape=shape)

        return cls(folder, mm("labels.f32", "<f4", (n,)), mm("dense.f32", "<f4", (n, 13)),
                   mm("lengths.i32", "<i4", (n, nf)), mm("offsets.i64", "<i8", (n + 1,)),
                   mm("values.i64", "<i8", (meta["values"],)), meta["schema"]["features"])  # fmt: skip

    def split_index(self, split: str, period: int) -> np.ndarray:
        """Example indices of a split: every ``period``-th good example is held out (``data.is_val``)."""
        held = np.arange(len(self.labels)) % period == period - 1
        return np.flatnonzero(held if split == "val" else ~held)

    def batch(self, rows: np.ndarray):
        """(dense [B, 13], KeyedJaggedTensor, labels [B]) of these examples, as ``data.to_batch``."""
        import torch
        from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

        lens = np.asarray(self.lengths[rows], dtype=np.int64)  # [B, F]
        cell_start = self.offsets[rows][:, None] + np.cumsum(lens, 1) - lens
        fm_start, fm_len = cell_start.T.ravel(), lens.T.ravel()  # feature-major, as KJT wants
        total = int(fm_len.sum())
        before = np.cumsum(fm_len) - fm_len
        idx = np.repeat(fm_start - before, fm_len) + np.arange(total)
        kjt = KeyedJaggedTensor(keys=list(self.features), values=torch.from_numpy(np.asarray(self.values[idx])),
                                lengths=torch.from_numpy(fm_len))  # fmt: skip
        dense = torch.from_numpy(np.array(self.dense[rows], dtype=np.float32))
        return dense, kjt, torch.from_numpy(np.array(self.labels[rows], dtype=np.float32))


def train_batches(log: CachedLog, period: int, batch_size: int, rank: int, world: int) -> Iterator[tuple]:
    idx = log.split_index("train", period)
    for b in range(len(idx) // batch_size):  # full global batches only, as the text reader
        yield log.batch(idx[b * batch_size : (b + 1) * batch_size][rank::world])


def eval_batches(log: CachedLog, period: int, batch_size: int, split: str) -> Iterator[tuple]:
    idx = log.split_index(split, period)
    for b in range(0, len(idx), batch_size):
        yield log.batch(idx[b : b + batch_size])
