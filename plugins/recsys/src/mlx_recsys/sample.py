"""The embedded default: a generated Criteo-format click log with a learnable preference signal.

Written as a TSV file in the reader's format and read back by ``data.read_tsv``, the path a
user's file takes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mlx_core import ConfigError

from .config import N_CATEGORICAL


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
