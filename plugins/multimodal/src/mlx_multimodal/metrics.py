"""The standard VQA accuracy: an answer is right to the degree that humans gave it.

Official form (VQA v2's and TextVQA's evaluation, ``vqaEval.py``): with the record's 10 human answers,
``acc = mean over the 10 subsets of 9 answers of min(#answers in the subset equal to the prediction / 3, 1)``.
A record with another number of answers ``n`` (the plugin's own records: often one) scores the simple
form ``min(#equal / min(3, n), 1)``, so a single given answer is an exact match.

Answers are compared after ``data.normalize_answer`` (lower case, single spaces), the same
normalisation the labels get; the official script's punctuation, article and number-word rewriting is
not applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def vqa_score(prediction: str, given: Sequence[str]) -> float:
    """VQA accuracy of one predicted answer against the answers humans gave (see the module doc)."""
    matches = sum(a == prediction for a in given)
    n = len(given)
    if n == 10:  # the official leave-one-out average over the 10 subsets of 9
        return sum(min((matches - (a == prediction)) / 3, 1.0) for a in given) / n
    return min(matches / min(3, n), 1.0) if n else 0.0


def vqa_accuracy(predictions: Sequence[str], given: Sequence[Sequence[str]]) -> float:
    """Mean VQA accuracy of ``predictions`` (one answer per record) against each record's answers."""
    if len(predictions) != len(given):
        raise ValueError(f"{len(predictions)} predictions for {len(given)} records")
    return sum(map(vqa_score, predictions, given)) / max(1, len(given))


def split_vqa_accuracy(model: Any, split: Any, answers: list[str], device: str, batch_size: int = 256) -> float:
    """VQA accuracy of ``model``'s top answer on every record of ``split`` (a ``data.Split``)."""
    import torch

    from .data import to_float

    model.eval()
    top: list[int] = []
    with torch.no_grad():
        for i in range(0, len(split), batch_size):
            img = to_float(split.images[i : i + batch_size]).to(device)
            ids = split.input_ids[i : i + batch_size].to(device)
            top += model(img, ids).argmax(-1).tolist()
    return vqa_accuracy([answers[j] for j in top], split.answers)
