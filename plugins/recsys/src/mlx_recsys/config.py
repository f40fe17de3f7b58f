"""The recsys run config (pydantic only: no torch import here, `mlx plugins list` reads it)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, field_validator

from mlx_core import ConfigError, Section

SHARDING_TYPES: tuple[str, ...] = ("table_wise", "row_wise", "column_wise", "table_row_wise", "data_parallel")

N_DENSE = 13
N_COLUMNS_UNLABELED = 39  # the Criteo test format: no label column
N_CATEGORICAL = 26
DEFAULT_CATEGORICAL = ["user", "product", "category", "history"] + [f"c{i}" for i in range(5, N_CATEGORICAL + 1)]


class TableConfig(Section):
    """One embedding table (a torchrec ``EmbeddingBagConfig``)."""

    name: str = Field("table", min_length=1, description="table name (key of train.sharding)")
    embedding_dim: int = Field(64, ge=4, le=4096, description="embedding width; a multiple of 4 (fbgemm kernels)")
    num_embeddings: int = Field(4096, ge=1, le=1 << 31, description="rows; categorical ids are hashed into this")
    feature_names: list[str] = Field(
        default_factory=lambda: ["feature"], min_length=1, description="features looked up in this table"
    )
    pooling: Literal["SUM", "MEAN"] = Field("SUM", description="how a bag of ids is pooled")

    @field_validator("embedding_dim")
    @classmethod
    def _multiple_of_4(cls, v: int) -> int:
        if v % 4:
            raise ValueError("must be a multiple of 4")
        return v


def sharding_types(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _default_tables() -> list[TableConfig]:
    # the TorchRec tutorial's two tables, plus a small one for the generated log's category
    return [
        TableConfig(name="product_table", embedding_dim=64, num_embeddings=4096, feature_names=["product", "history"]),
        TableConfig(name="user_table", embedding_dim=64, num_embeddings=4096, feature_names=["user"]),
        TableConfig(name="category_table", embedding_dim=64, num_embeddings=64, feature_names=["category"]),
    ]


class DataConfig(Section):
    path: str | None = Field(
        None, description="a Criteo-format TSV (label, 13 ints, 26 hex categoricals); None: generated click log"
    )
    examples: int = Field(20000, ge=50, le=10_000_000, description="rows of the generated click log")
    users: int = Field(2000, ge=2, description="users in the generated log (power-law popularity)")
    products: int = Field(3000, ge=2, description="products in the generated log (power-law popularity)")
    categories: int = Field(50, ge=1, description="product categories in the generated log")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="every round(1/val_fraction)-th example is held out")
    batch_size: int = Field(256, ge=2, le=1 << 20, description="global batch size (split evenly over processes)")
    on_bad_line: Literal["error", "skip"] = Field(
        "error", description="a malformed TSV line: stop (error) or skip and count it"
    )
    categorical_names: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CATEGORICAL),
        description="feature names of the 26 categorical columns, in column order",
    )
    multi_value_sep: str = Field(
        ",", min_length=1, max_length=1, description="separates several hex ids in one categorical cell"
    )

    @field_validator("categorical_names")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        if len(v) != N_CATEGORICAL:
            raise ValueError(f"expected {N_CATEGORICAL} names, got {len(v)}")
        if len(set(v)) != len(v):
            raise ValueError("names must be unique")
        return v


class ModelConfig(Section):
    tables: list[TableConfig] = Field(
        default_factory=_default_tables, min_length=1, description="embedding tables (EmbeddingBagConfig)"
    )
    dense_arch: list[int] = Field(
        default_factory=lambda: [128], description="hidden sizes of the DLRM dense MLP (the embedding dim is appended)"
    )
    over_arch: list[int] = Field(
        default_factory=lambda: [128, 64], description="hidden sizes of the DLRM over MLP (1 logit is appended)"
    )


class TrainConfig(Section):
    epochs: int = Field(2, ge=1, le=1000, description="passes over the training split")
    allow_oversubscribe: bool = Field(False, description="allow more processes than this machine has cores")
    # the launch moved to the core launcher (`mlx run recsys train --nproc N --nnodes M ...`):
    # the old keys stay only to say so in one line
    nproc: int | None = Field(None, description="removed: use `mlx run recsys train --nproc N`")
    nnodes: str | None = Field(None, description="removed: use `mlx run ... --nnodes N|MIN:MAX`")
    rdzv_backend: str | None = Field(None, description="removed: the core launcher uses c10d")
    rdzv_endpoint: str | None = Field(None, description="removed: use `mlx run ... --rdzv-endpoint HOST:PORT`")
    rdzv_id: str | None = Field(None, description="removed: use `mlx run ... --rdzv-id ID`")
    sharding: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="per-table ParameterConstraints: table name -> allowed sharding type(s) among "
        + ", ".join(SHARDING_TYPES),
    )
    sparse_optimizer: Literal["rowwise_adagrad", "sgd"] = Field(
        "rowwise_adagrad", description="optimizer fused into the embedding backward"
    )
    sparse_lr: float = Field(0.05, gt=0, description="learning rate of the fused sparse optimizer")
    dense_lr: float = Field(0.003, gt=0, description="Adam learning rate of the dense (MLP) parameters")
    max_steps: int | None = Field(None, ge=1, description="stop each epoch after this many steps (tests)")
    threads: int = Field(
        1,
        ge=0,
        description="torch intra-op threads per process; 0: cores / processes (on shared cores, more than 1 made small steps ~30x slower)",
    )

    @field_validator("nproc", "nnodes", "rdzv_backend", "rdzv_endpoint", "rdzv_id")
    @classmethod
    def _moved_to_the_launcher(cls, v: object, info: object) -> object:
        if v is None:
            return v
        flag = {"rdzv_backend": "the core launcher (c10d)"}.get(
            info.field_name, f"--{info.field_name.replace('_', '-')}"
        )
        raise ValueError(
            f"train.{info.field_name} was removed in mlx-recsys 0.2: processes and nodes are the core launcher's, "
            f"use `mlx run recsys train {flag}` or the [launch] table (docs/scale-out.md)"
        )


class ExportConfig(Section):
    max_auc_drop: float = Field(
        0.02, ge=0, le=1, description="fail the export when int8 AUC is this much below float AUC"
    )


class PredictConfig(Section):
    batch_size: int = Field(1024, ge=1, description="examples scored per forward pass")


class RecsysConfig(Section):
    seed: int = Field(0, ge=0, lt=2**63, description="seed of the generated data and the initialisation")
    data: DataConfig = Field(default_factory=DataConfig, description="data stage")
    model: ModelConfig = Field(default_factory=ModelConfig, description="model stage")
    train: TrainConfig = Field(default_factory=TrainConfig, description="train stage")
    export: ExportConfig = Field(default_factory=ExportConfig, description="export stage")
    predict: PredictConfig = Field(default_factory=PredictConfig, description="predict command")


def check(cfg: RecsysConfig) -> None:
    """Cross-field rules; raises ConfigError with one line naming the offending value."""
    _check_tables(cfg)
    _check_sharding(cfg)
    _check_processes(cfg)


def _check_tables(cfg: RecsysConfig) -> None:
    names = [t.name for t in cfg.model.tables]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"model.tables: table name {sorted(dup)[0]!r} is declared twice")
    dims = {t.embedding_dim for t in cfg.model.tables}
    if len(dims) > 1:
        raise ConfigError(f"model.tables: DLRM needs one embedding_dim for all tables, got {sorted(dims)}")
    seen: dict[str, str] = {}
    for t in cfg.model.tables:
        for f in t.feature_names:
            if f in seen:
                raise ConfigError(f"model.tables: feature {f!r} is in both {seen[f]!r} and {t.name!r}")
            if f not in cfg.data.categorical_names:
                raise ConfigError(
                    f"model.tables: feature {f!r} of table {t.name!r} is not a categorical column; "
                    f"expected one of data.categorical_names"
                )
            seen[f] = t.name


def _check_sharding(cfg: RecsysConfig) -> None:
    names = [t.name for t in cfg.model.tables]
    for table, types in cfg.train.sharding.items():
        if table not in names:
            raise ConfigError(f"train.sharding names unknown table {table!r}; tables: {', '.join(names)}")
        for t in [types] if isinstance(types, str) else types:
            if t not in SHARDING_TYPES:
                raise ConfigError(
                    f"train.sharding.{table}: unknown sharding type {t!r}; expected one of {', '.join(SHARDING_TYPES)}"
                )
        if not types:
            raise ConfigError(f"train.sharding.{table}: empty list of sharding types")


def _check_processes(cfg: RecsysConfig) -> None:
    """The launched job (``ctx.dist``, from torchrun's environment) against the config."""
    from mlx_core.dist import DistInfo

    d = DistInfo.from_env()
    if cfg.data.batch_size % d.world_size:
        raise ConfigError(
            f"data.batch_size {cfg.data.batch_size} is not divisible by the world size {d.world_size} "
            "(--nproc x nodes): each global batch is split evenly over the processes"
        )
    cores = os.cpu_count() or 1
    if d.local_world_size > cores and not cfg.train.allow_oversubscribe:
        raise ConfigError(
            f"--nproc {d.local_world_size} is more than this machine's {cores} cores; "
            "set train.allow_oversubscribe=true to run anyway"
        )
