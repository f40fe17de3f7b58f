"""The generated corpus: deterministic, distinct, and with French agreement done right."""

import random

from mlx_translation import grammar


def test_generate_is_deterministic_distinct_and_opus_books_shaped():
    a, b = grammar.generate(300, seed=3), grammar.generate(300, seed=3)
    assert a == b
    assert a != grammar.generate(300, seed=4)
    assert len({r["translation"]["en"] for r in a}) == 300
    assert all(set(r) == {"id", "translation"} and set(r["translation"]) == {"en", "fr"} for r in a)
    assert all(r["translation"]["fr"].endswith(".") and r["translation"]["fr"][0].isupper() for r in a)


def test_noun_phrases_agree_in_gender_and_number():
    rng = random.Random(0)
    for _ in range(500):
        np_ = grammar.noun_phrase(rng)
        words = np_.fr.replace("l'", "").split()
        if np_.kind == "the_pl":
            assert words[0] == "les"
        if np_.kind == "the":
            assert np_.fr.startswith("la " if np_.gender == "f" else ("le ", "l'")) or np_.fr.startswith("l'")
        if np_.plural:
            # every French word after the determiner is a plural form
            assert all(w.endswith(("s", "x")) for w in words[1:]), np_.fr


def test_known_sentences():
    assert grammar._join("je", "ai", "la", "arbre") == "j'ai l'arbre"
    assert grammar._de("le chien") == "du chien" and grammar._de("les chats") == "des chats"
    assert grammar._de("la table") == "de la table"
