"""AUC and normalized entropy of click predictions."""

from __future__ import annotations

import math

import torch


def auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half); nan with one class only."""
    scores = scores.double().flatten()
    labels = labels.double().flatten()
    n_pos = float(labels.sum())
    n_neg = float(labels.numel() - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = torch.argsort(scores)
    s = scores[order]
    ranks = torch.empty_like(s)
    # average ranks over ties
    uniq, inverse, counts = torch.unique_consecutive(s, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    starts = ends - counts.double() + 1
    ranks = ((starts + ends) / 2)[inverse]
    rank_pos = float((ranks * labels[order]).sum())
    return (rank_pos - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def normalized_entropy(probs: torch.Tensor, labels: torch.Tensor, eps: float = 1e-7) -> float:
    """Log loss divided by the entropy of the base click rate (< 1: better than the base rate)."""
    p = probs.double().flatten().clamp(eps, 1 - eps)
    y = labels.double().flatten()
    logloss = float(-(y * p.log() + (1 - y) * (1 - p).log()).mean())
    ctr = float(y.mean())
    if ctr <= 0 or ctr >= 1:
        return float("nan")
    base = -(ctr * math.log(ctr) + (1 - ctr) * math.log(1 - ctr))
    return logloss / base


def logloss(probs: torch.Tensor, labels: torch.Tensor, eps: float = 1e-7) -> float:
    p = probs.double().flatten().clamp(eps, 1 - eps)
    y = labels.double().flatten()
    return float(-(y * p.log() + (1 - y) * (1 - p).log()).mean())
