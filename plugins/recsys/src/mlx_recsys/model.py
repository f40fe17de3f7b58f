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


class TableBatchedBags(torch.nn.Module):
    """All of an EmbeddingBagCollection's tables in one fbgemm table-batched kernel
    (``SplitTableBatchedEmbeddingBagsCodegen``, ``ComputeDevice.CPU``, ``EmbeddingLocation.HOST``),
    with its optimizer (SGD or row-wise Adagrad) fused into backward; output equal to the EBC's
    ``KeyedTensor.values()``, ``[B, sum of dims]``.

    The KeyedJaggedTensor's ``values()`` and ``offsets()`` go to the kernel as they are (int64; a
    KJT whose keys come in another order is permuted first). torchrec's own
    ``FusedEmbeddingBagCollection`` around the same kernel splits the KJT per feature,
    concatenates it back and casts ids and offsets to int32 on every call: on 2 threads those
    copies cost more than the lookup itself up to 16 tables (benchmarks/recsys.py). This is the
    kernel the sharded model (DistributedModelParallel's ``BatchedFusedEmbeddingBag``) runs; this
    wrapper is that call without the sharding, for unsharded lookups and the benchmark.
    """

    def __init__(
        self, tables: list[EmbeddingBagConfig], optimizer: str = "sgd", lr: float = 0.01, eps: float = 1e-8
    ) -> None:
        from fbgemm_gpu.split_embedding_configs import EmbOptimType
        from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation, PoolingMode
        from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
            ComputeDevice,
            SplitTableBatchedEmbeddingBagsCodegen,
        )

        super().__init__()
        poolings = {t.pooling for t in tables}
        if len(poolings) != 1 or PoolingType.NONE in poolings:
            raise ValueError(
                f"one kernel pools one way (SUM or MEAN); the tables pool {sorted(p.name for p in poolings)}"
            )
        opts = {"sgd": EmbOptimType.EXACT_SGD, "rowwise_adagrad": EmbOptimType.EXACT_ROWWISE_ADAGRAD}
        if optimizer not in opts:
            raise ValueError(f"optimizer {optimizer!r}: expected one of {sorted(opts)}")
        self.features = [f for t in tables for f in t.feature_names]
        self.tables = [t.name for t in tables]
        self.tbe = SplitTableBatchedEmbeddingBagsCodegen(
            embedding_specs=[
                (t.num_embeddings, t.embedding_dim, EmbeddingLocation.HOST, ComputeDevice.CPU) for t in tables
            ],
            feature_table_map=[i for i, t in enumerate(tables) for _ in t.feature_names],
            optimizer=opts[optimizer],
            learning_rate=lr,
            eps=eps,
            pooling_mode=PoolingMode.SUM if poolings == {PoolingType.SUM} else PoolingMode.MEAN,
        )

    @classmethod
    def from_collection(cls, ebc: EmbeddingBagCollection, optimizer: str = "sgd", lr: float = 0.01) -> TableBatchedBags:
        """The same tables and weights as ``ebc`` (an unsharded EmbeddingBagCollection)."""
        out = cls(ebc.embedding_bag_configs(), optimizer=optimizer, lr=lr)
        sd = ebc.state_dict()
        with torch.no_grad():
            for name, w in zip(out.tables, out.weights(), strict=True):
                w.copy_(sd[f"embedding_bags.{name}.weight"])
        return out

    def weights(self) -> list[torch.Tensor]:
        """One ``[rows, dim]`` view per table, in the tables' order."""
        return list(self.tbe.split_embedding_weights())

    def forward(self, kjt: Any) -> torch.Tensor:
        if kjt.keys() != self.features:
            kjt = kjt.permute([kjt.keys().index(f) for f in self.features])
        return self.tbe(indices=kjt.values(), offsets=kjt.offsets())
