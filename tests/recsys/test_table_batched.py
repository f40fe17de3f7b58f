"""mlx_recsys.model.TableBatchedBags (one fbgemm table-batched kernel for all tables) against the
unfused reference, torchrec's EmbeddingBagCollection (one nn.EmbeddingBag per table)."""

from __future__ import annotations

import pytest
import torch
from mlx_recsys.model import TableBatchedBags
from torchrec import EmbeddingBagCollection, EmbeddingBagConfig, PoolingType
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor


def _tables(pooling: PoolingType) -> list[EmbeddingBagConfig]:
    return [  # two features on one table, unequal dims
        EmbeddingBagConfig(name="a", embedding_dim=8, num_embeddings=50, feature_names=["x", "y"], pooling=pooling),
        EmbeddingBagConfig(name="b", embedding_dim=4, num_embeddings=30, feature_names=["z"], pooling=pooling),
    ]


def _kjt(keys: list[str], batch: int = 6, seed: int = 0) -> KeyedJaggedTensor:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, 4, (len(keys) * batch,), generator=g)  # empty bags included
    values = torch.randint(0, 30, (int(lengths.sum()),), generator=g)
    return KeyedJaggedTensor(keys=keys, values=values, lengths=lengths)


@pytest.mark.parametrize("pooling", [PoolingType.SUM, PoolingType.MEAN])
@pytest.mark.parametrize("keys", [["x", "y", "z"], ["z", "x", "y"]])
def test_forward_equals_the_per_table_collection(pooling: PoolingType, keys: list[str]) -> None:
    torch.manual_seed(0)
    ebc = EmbeddingBagCollection(tables=_tables(pooling))
    fused = TableBatchedBags.from_collection(ebc)
    kjt = _kjt(keys)
    with torch.no_grad():
        ref, out = ebc(kjt).values(), fused(kjt)
    assert out.shape == ref.shape == (6, 8 + 8 + 4)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)


def test_sgd_fused_into_backward_equals_torch_sgd_on_the_collection() -> None:
    torch.manual_seed(0)
    ebc = EmbeddingBagCollection(tables=_tables(PoolingType.SUM))
    fused = TableBatchedBags.from_collection(ebc, optimizer="sgd", lr=0.5)
    opt = torch.optim.SGD(ebc.parameters(), lr=0.5)
    before = [w.detach().clone() for w in fused.weights()]
    for step in range(2):
        kjt = _kjt(["x", "y", "z"], seed=step)
        grad = torch.randn(6, 20, generator=torch.Generator().manual_seed(10 + step))
        opt.zero_grad()
        ebc(kjt).values().backward(grad)
        opt.step()
        fused(kjt).backward(grad)  # the update happens inside backward
    sd = ebc.state_dict()
    for name, w, w0 in zip(fused.tables, fused.weights(), before, strict=True):
        assert not torch.equal(w, w0)  # the fused update did happen
        torch.testing.assert_close(w, sd[f"embedding_bags.{name}.weight"], rtol=1e-5, atol=1e-6)


def test_mixed_pooling_is_refused() -> None:
    tables = [_tables(PoolingType.SUM)[0], _tables(PoolingType.MEAN)[1]]
    with pytest.raises(ValueError, match="pools one way"):
        TableBatchedBags(tables)
