import math

import pytest
import torch
from mlx_recsys import data as D
from mlx_recsys.config import N_CATEGORICAL, RecsysConfig
from mlx_recsys.sample import generate_click_log

from mlx_core import DataError


def line(label="1", ints=None, cats=None) -> str:
    ints = ints if ints is not None else ["1"] * 13
    cats = cats if cats is not None else [""] * N_CATEGORICAL
    return "\t".join([label, *ints, *cats]) + "\n"


SCHEMA = D.Schema(features=["user", "product", "history"], columns=[0, 1, 3], rows=[100, 4096, 4096])


def test_parse_line_hashes_and_bags():
    cats = ["1f4", "ca", "", "65,ca,12d"] + [""] * (N_CATEGORICAL - 4)
    ints = ["0", "3", "", "-2"] + ["1"] * 9
    ex = D.parse_line(line("0", ints, cats), SCHEMA)
    assert ex.label == 0.0
    assert ex.dense[:4] == [0.0, math.log1p(3), 0.0, 0.0]  # empty -> 0, negatives clipped
    assert ex.sparse == [[0x1F4 % 100], [0xCA], [0x65, 0xCA, 0x12D]]


def test_kjt_batch_with_empty_bags_like_the_tutorial():
    from torchrec import EmbeddingBagCollection, EmbeddingBagConfig, PoolingType

    exs = [
        D.Example(1.0, [0.0] * 13, [[101, 202]]),
        D.Example(0.0, [0.0] * 13, [[]]),
        D.Example(1.0, [0.0] * 13, [[303]]),
    ]
    dense, kjt, labels = D.to_batch(exs, ["product"])
    assert kjt.keys() == ["product"]
    assert kjt.lengths().tolist() == [2, 0, 1]
    assert kjt.values().tolist() == [101, 202, 303]
    assert dense.shape == (3, 13) and labels.tolist() == [1.0, 0.0, 1.0]
    ebc = EmbeddingBagCollection(
        tables=[
            EmbeddingBagConfig(
                name="product_table",
                embedding_dim=4,
                num_embeddings=4096,
                feature_names=["product"],
                pooling=PoolingType.SUM,
            )
        ]
    )
    pooled = ebc(kjt)["product"]
    w = ebc.embedding_bags["product_table"].weight
    assert (
        torch.allclose(pooled[0], w[101] + w[202]) and torch.all(pooled[1] == 0) and torch.allclose(pooled[2], w[303])
    )


def test_bad_line_error_names_file_and_line(tmp_path):
    p = tmp_path / "x.tsv"
    p.write_text(line() + line() + "1\t2\t3\n" + line())
    with pytest.raises(DataError, match=r"x\.tsv:3: expected 40 tab-separated columns.*got 3"):
        list(D.read_tsv(p, SCHEMA, "error"))


def test_bad_line_skip_counts(tmp_path):
    p = tmp_path / "x.tsv"
    neg = line(cats=["-5"] + [""] * (N_CATEGORICAL - 1))
    p.write_text(line() + "1\t2\n" + neg + line() + line(label="7"))
    stats = D.ScanStats()
    got = list(D.read_tsv(p, SCHEMA, "skip", stats))
    assert len(got) == 2 and stats.good == 2 and stats.lines == 5
    assert stats.skipped == {"column_count": 1, "negative_id": 1, "label": 1}


def test_negative_id_is_an_error(tmp_path):
    p = tmp_path / "neg.tsv"
    p.write_text(line(cats=["a", "-1f"] + [""] * (N_CATEGORICAL - 2)))
    with pytest.raises(DataError, match=r"neg\.tsv:1: negative id '-1f' in categorical column C2 \(product\)"):
        list(D.read_tsv(p, SCHEMA))


def test_generated_log_is_deterministic_and_readable(tmp_path):
    a, b, c = tmp_path / "a.tsv", tmp_path / "b.tsv", tmp_path / "c.tsv"
    fa = generate_click_log(a, 500, 50, 80, 5, seed=1)
    generate_click_log(b, 500, 50, 80, 5, seed=1)
    generate_click_log(c, 500, 50, 80, 5, seed=2)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    assert 0.05 < fa["ctr"] < 0.95
    schema = D.Schema.from_config(RecsysConfig())
    exs = list(D.read_tsv(a, schema))
    assert len(exs) == 500
    hist = schema.features.index("history")
    lens = {len(e.sparse[hist]) for e in exs}
    assert 0 in lens and max(lens) > 1  # variable-length bags, empty ones included


def test_power_law_popularity(tmp_path):
    p = tmp_path / "a.tsv"
    generate_click_log(p, 4000, 400, 800, 5, seed=0)
    from collections import Counter

    users = Counter(row.split("\t")[14] for row in p.read_text().splitlines())
    top = sum(c for _, c in users.most_common(40))
    assert top / 4000 > 0.35  # the top 10% of users make far more than 10% of the rows


def test_rank_batches_partition_each_global_batch(tmp_path):
    p = tmp_path / "a.tsv"
    generate_click_log(p, 400, 30, 40, 5, seed=0)
    schema = D.Schema.from_config(RecsysConfig())
    spec = {"path": str(p), "schema": vars(schema), "on_bad_line": "error", "val_fraction": 0.2}
    n_train, n_val = D.split_counts(400, 0.2)
    assert (n_train, n_val) == (320, 80)
    assert sum(1 for _ in D.iter_split(spec, "val")) == n_val
    full = list(D.train_batches(spec, 64))
    r0 = list(D.train_batches(spec, 64, rank=0, world=2))
    r1 = list(D.train_batches(spec, 64, rank=1, world=2))
    assert len(full) == len(r0) == len(r1) == 5
    for f, a, b in zip(full, r0, r1, strict=True):
        assert a[0].shape[0] == b[0].shape[0] == 32
        assert torch.equal(torch.sort(torch.cat([a[0], b[0]]), dim=0).values, torch.sort(f[0], dim=0).values)
