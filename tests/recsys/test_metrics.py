import itertools
import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mlx_recsys.metrics import auc, normalized_entropy


def brute_auc(s, y):
    pos = [a for a, lab in zip(s, y, strict=True) if lab == 1]
    neg = [a for a, lab in zip(s, y, strict=True) if lab == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@settings(max_examples=50)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1)), min_size=2, max_size=40))
def test_auc_matches_pairwise_count(rows):
    s = [float(a) for a, _ in rows]
    y = [b for _, b in rows]
    got = auc(torch.tensor(s), torch.tensor(y, dtype=torch.float32))
    if 0 < sum(y) < len(y):
        assert math.isclose(got, brute_auc(s, y), abs_tol=1e-9)
    else:
        assert math.isnan(got)


def test_normalized_entropy_of_base_rate_is_one():
    y = torch.tensor([1.0, 0, 0, 0])
    assert math.isclose(normalized_entropy(torch.full((4,), 0.25), y), 1.0, rel_tol=1e-6)
    assert normalized_entropy(torch.tensor([0.9, 0.1, 0.1, 0.1]), y) < 0.5
