"""The ``criteo`` preset: the Criteo 1TB / Kaggle day-file layout as DLRM reads it.

A day file (``day_0``, ``day_1``, ... or any name) is tab-separated text, one example a line:
the 0/1 label first, then the 13 integer features ``I1..I13`` (empty = missing = 0, then
``log(1 + x)`` with negatives clipped to 0, as DLRM's preprocessing does), then the 26 categorical
features ``C1..C26`` as 32-bit hex ids (empty = missing = an empty bag). With the preset each
categorical column gets its own embedding table ``t_C1..t_C26``; ids are hashed into the table's
rows (``id % rows``, DLRM's ``--max-ind-range``). Pure Python: read by the config validator.
"""

from __future__ import annotations

from typing import Any

from .config import N_CATEGORICAL

CRITEO_CATEGORICAL = [f"C{i}" for i in range(1, N_CATEGORICAL + 1)]
CRITEO_DENSE = [f"I{i}" for i in range(1, 14)]


def table_rows(rows: int | list[int]) -> list[int]:
    """One row count per categorical column: a single number for all, or 26 of them."""
    if isinstance(rows, int):
        return [rows] * N_CATEGORICAL
    if len(rows) != N_CATEGORICAL:
        raise ValueError(f"model.table_rows: expected one number or {N_CATEGORICAL} (one per C1..C26), got {len(rows)}")
    return list(rows)


def criteo_tables(rows: int | list[int], dim: int) -> list[dict[str, Any]]:
    """The preset's tables: one per column, as ``model.tables`` entries."""
    return [{"name": f"t_{c}", "embedding_dim": dim, "num_embeddings": n, "feature_names": [c]}
            for c, n in zip(CRITEO_CATEGORICAL, table_rows(rows), strict=True)]  # fmt: skip


def _plain(section: Any) -> dict[str, Any]:
    if section is None:
        return {}
    return dict(section) if isinstance(section, dict) else section.model_dump()


def apply_preset(data: Any) -> Any:
    """The raw config with the preset's tables and column names filled in (``model.preset=criteo``)."""
    if not isinstance(data, dict):
        return data
    model = _plain(data.get("model"))
    if model.get("preset") != "criteo":
        return data
    from .config import ModelConfig

    rows = model.get("table_rows", ModelConfig.model_fields["table_rows"].default)
    dim = model.get("table_dim", ModelConfig.model_fields["table_dim"].default)
    try:
        tables = criteo_tables(rows, dim)
    except (TypeError, ValueError):  # a bad table_rows / table_dim: its own field validator names it
        return data
    return {**data, "model": {**model, "tables": tables},
            "data": {**_plain(data.get("data")), "categorical_names": list(CRITEO_CATEGORICAL)}}  # fmt: skip


def write_day_file(path: Any, rows: int, seed: int = 0, missing: float = 0.1) -> None:
    """A synthetic day file in the real layout (tests and the reader benchmark): labels with a
    weak dependence on I1 and C1, counts with heavy tails, 8-hex-digit ids, ``missing`` of the cells empty."""
    import numpy as np

    rng = np.random.default_rng(seed)
    counts = rng.geometric(0.05, size=(rows, 13)) - 1
    ids = rng.zipf(1.3, size=(rows, N_CATEGORICAL)) * 2654435761 % (1 << 32)
    logit = 0.3 * np.log1p(counts[:, 0]) + (ids[:, 0] % 7 == 0) - 1.5
    labels = rng.random(rows) < 1 / (1 + np.exp(-logit))
    gaps_d, gaps_c = rng.random((rows, 13)) < missing, rng.random((rows, N_CATEGORICAL)) < missing
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for r in range(rows):
            dense = ["" if gaps_d[r, j] else str(counts[r, j]) for j in range(13)]
            cats = ["" if gaps_c[r, j] else f"{ids[r, j]:08x}" for j in range(N_CATEGORICAL)]
            fh.write("\t".join([str(int(labels[r])), *dense, *cats]) + "\n")
