"""EmbeddingBagCollection from the config's tables + torchrec's DLRM; sharders and constraints."""

from __future__ import annotations

from typing import Any

import torch
from torchrec import EmbeddingBagCollection, EmbeddingBagConfig, PoolingType
from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
from torchrec.distributed.planner import ParameterConstraints
from torchrec.models.dlrm import DLRM

from .config import N_DENSE, RecsysConfig, sharding_types


def table_configs(cfg: RecsysConfig) -> list[EmbeddingBagConfig]:
    return [
        EmbeddingBagConfig(
            name=t.name,
            embedding_dim=t.embedding_dim,
            num_embeddings=t.num_embeddings,
            feature_names=list(t.feature_names),
            pooling=PoolingType[t.pooling],
        )
        for t in cfg.model.tables
    ]


def build_dlrm(cfg: RecsysConfig, sparse_device: str = "meta") -> DLRM:
    """DLRM over an EmbeddingBagCollection; on ``meta`` the tables take no memory until the
    sharder (DistributedModelParallel) materialises each rank's shards."""
    torch.manual_seed(cfg.seed)
    dim = cfg.model.tables[0].embedding_dim
    ebc = EmbeddingBagCollection(tables=table_configs(cfg), device=torch.device(sparse_device))
    return DLRM(
        embedding_bag_collection=ebc,
        dense_in_features=N_DENSE,
        dense_arch_layer_sizes=[*cfg.model.dense_arch, dim],
        over_arch_layer_sizes=[*cfg.model.over_arch, 1],
        dense_device=torch.device("cpu"),
    )


def build_float(cfg: RecsysConfig, state: dict[str, torch.Tensor] | None = None) -> DLRM:
    """An unsharded CPU model (evaluation, export), optionally with a full state dict."""
    model = build_dlrm(cfg, sparse_device="cpu")
    if state is not None:
        model.load_state_dict(state)
    return model.eval()


class Sharder(EmbeddingBagCollectionSharder):
    """torchrec 1.9 offers row_wise / table_row_wise only for cuda/tpu compute devices; their
    CPU path (gloo reduce-scatter, fbgemm CPU kernels) works, so they are allowed on CPU too."""

    def sharding_types(self, compute_device_type: str) -> list[str]:
        types = list(super().sharding_types(compute_device_type))
        for extra in ("row_wise", "table_row_wise"):
            if extra not in types:
                types.append(extra)
        return types


def constraints(cfg: RecsysConfig) -> dict[str, ParameterConstraints]:
    return {table: ParameterConstraints(sharding_types=sharding_types(v)) for table, v in cfg.train.sharding.items()}


def describe(model: Any) -> dict[str, Any]:
    n_dense = sum(p.numel() for n, p in model.named_parameters() if "embedding_bags" not in n)
    return {"dense_parameters": n_dense}
