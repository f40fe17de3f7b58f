"""The generated corpus: simple, repetitive English documents (learnable and deterministic by seed).

The data stage writes it as a .txt file (one document per line) in the run and reads it back with
``data.read_texts``, the path a user's file takes.
"""

from __future__ import annotations

import random

SUBJECTS = ["the cat", "a small dog", "the old man", "my sister", "the teacher", "a farmer", "the river", "our team",
            "the engine", "a young bird", "the city", "this model"]  # fmt: skip
VERBS = ["sees", "likes", "carries", "follows", "builds", "paints", "finds", "moves", "watches", "cleans", "opens"]
OBJECTS = ["a red ball", "the green door", "two apples", "the long road", "a quiet house", "the blue sky",
           "some fresh bread", "the heavy box", "a tall tree", "the morning light"]  # fmt: skip
TAILS = ["in the morning", "after the rain", "near the market", "every day", "with great care", "before dinner",
         "under the bridge", "at night"]  # fmt: skip


def generate_corpus(n: int, seed: int) -> list[str]:
    """``n`` documents of simple, repetitive English (a learnable, deterministic toy corpus)."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        sentences = []
        for _ in range(rng.randint(2, 4)):
            s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
            if rng.random() < 0.6:
                s += f" {rng.choice(TAILS)}"
            sentences.append(s[0].upper() + s[1:] + ".")
        docs.append(" ".join(sentences))
    return docs
