"""A small rule-based English -> French grammar: the embedded default corpus.

Sentences over numbers, colours, objects and simple clauses, with the French agreement that
makes the task more than word-for-word lookup: noun gender and plural forms, adjective
agreement and position (colours follow the noun), elision (``l'arbre``, ``j'ai``), contracted
articles (``du``, ``des``), verb conjugation and ``ne ... pas`` negation.

Pure Python and deterministic for a given seed, so the corpus can be regenerated exactly.
"""

from __future__ import annotations

import random

# english singular, english plural, french singular, french plural, gender
NOUNS: tuple[tuple[str, str, str, str, str], ...] = (
    ("car", "cars", "voiture", "voitures", "f"),
    ("house", "houses", "maison", "maisons", "f"),
    ("book", "books", "livre", "livres", "m"),
    ("dog", "dogs", "chien", "chiens", "m"),
    ("cat", "cats", "chat", "chats", "m"),
    ("table", "tables", "table", "tables", "f"),
    ("apple", "apples", "pomme", "pommes", "f"),
    ("pen", "pens", "stylo", "stylos", "m"),
    ("chair", "chairs", "chaise", "chaises", "f"),
    ("box", "boxes", "boîte", "boîtes", "f"),
    ("bird", "birds", "oiseau", "oiseaux", "m"),
    ("flower", "flowers", "fleur", "fleurs", "f"),
    ("horse", "horses", "cheval", "chevaux", "m"),
    ("tree", "trees", "arbre", "arbres", "m"),
    ("bag", "bags", "sac", "sacs", "m"),
    ("hat", "hats", "chapeau", "chapeaux", "m"),
    ("ball", "balls", "balle", "balles", "f"),
    ("cup", "cups", "tasse", "tasses", "f"),
    ("key", "keys", "clé", "clés", "f"),
    ("door", "doors", "porte", "portes", "f"),
    ("boat", "boats", "bateau", "bateaux", "m"),
    ("shirt", "shirts", "chemise", "chemises", "f"),
)

# english, french m.sg, f.sg, m.pl, f.pl (colours follow the noun in French)
COLOURS: tuple[tuple[str, str, str, str, str], ...] = (
    ("red", "rouge", "rouge", "rouges", "rouges"),
    ("blue", "bleu", "bleue", "bleus", "bleues"),
    ("green", "vert", "verte", "verts", "vertes"),
    ("black", "noir", "noire", "noirs", "noires"),
    ("white", "blanc", "blanche", "blancs", "blanches"),
    ("yellow", "jaune", "jaune", "jaunes", "jaunes"),
    ("grey", "gris", "grise", "gris", "grises"),
)

# sizes precede the noun in French
SIZES: tuple[tuple[str, str, str, str, str], ...] = (
    ("small", "petit", "petite", "petits", "petites"),
    ("big", "grand", "grande", "grands", "grandes"),
)

NUMBERS: tuple[tuple[str, str], ...] = (
    ("two", "deux"), ("three", "trois"), ("four", "quatre"), ("five", "cinq"), ("six", "six"),
    ("seven", "sept"), ("eight", "huit"), ("nine", "neuf"), ("ten", "dix"), ("eleven", "onze"),
    ("twelve", "douze"), ("thirteen", "treize"), ("fourteen", "quatorze"), ("fifteen", "quinze"),
    ("sixteen", "seize"), ("seventeen", "dix-sept"), ("eighteen", "dix-huit"), ("nineteen", "dix-neuf"),
    ("twenty", "vingt"),
)  # fmt: skip

# english subject, english 3rd-person flag, french subject, person index into the verb table
SUBJECTS: tuple[tuple[str, bool, str, int], ...] = (
    ("I", False, "je", 0), ("you", False, "tu", 1), ("he", True, "il", 2), ("she", True, "elle", 2),
    ("we", False, "nous", 3), ("they", False, "ils", 5),
)  # fmt: skip

# english base, english 3rd person, french forms je/tu/il/nous/vous/ils
VERBS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("see", "sees", ("vois", "vois", "voit", "voyons", "voyez", "voient")),
    ("have", "has", ("ai", "as", "a", "avons", "avez", "ont")),
    ("want", "wants", ("veux", "veux", "veut", "voulons", "voulez", "veulent")),
    ("like", "likes", ("aime", "aimes", "aime", "aimons", "aimez", "aiment")),
    ("buy", "buys", ("achète", "achètes", "achète", "achetons", "achetez", "achètent")),
    ("find", "finds", ("trouve", "trouves", "trouve", "trouvons", "trouvez", "trouvent")),
)

PREPOSITIONS: tuple[tuple[str, str], ...] = (("on", "sur"), ("under", "sous"), ("in", "dans"), ("near", "près de"))

VOWELS = "aeiouhéèêâîôû"


def _elide(word: str, nxt: str) -> str:
    """``je`` -> ``j'``, ``le``/``la`` -> ``l'``, ``ne`` -> ``n'`` before a vowel."""
    if word in ("je", "le", "la", "ne", "de") and nxt[:1].lower() in VOWELS:
        return word[0] + "'"
    return word + " "


def _join(*parts: str) -> str:
    out = ""
    for i, p in enumerate(parts):
        if not p:
            continue
        nxt = next((q for q in parts[i + 1 :] if q), "")
        out += _elide(p, nxt) if nxt else p
    return out.replace("' ", "'").strip()


def _de(article_phrase: str) -> str:
    """``de`` + article, with the contractions ``du`` and ``des``."""
    if article_phrase.startswith("le "):
        return "du " + article_phrase[3:]
    if article_phrase.startswith("les "):
        return "des " + article_phrase[4:]
    return _join("de", article_phrase)


class Phrase:
    """A noun phrase in both languages; ``bare_fr`` is the French without its determiner."""

    def __init__(self, en: str, fr: str, plural: bool, gender: str, kind: str, bare_fr: str):
        self.en, self.fr, self.plural, self.gender, self.kind, self.bare_fr = en, fr, plural, gender, kind, bare_fr


def _agree(adj: tuple[str, str, str, str, str], gender: str, plural: bool) -> str:
    return adj[{("m", False): 1, ("f", False): 2, ("m", True): 3, ("f", True): 4}[(gender, plural)]]


def noun_phrase(rng: random.Random, allow_number: bool = True, definite: bool = False) -> Phrase:
    en_sg, en_pl, fr_sg, fr_pl, gender = rng.choice(NOUNS)
    colour = rng.choice(COLOURS) if rng.random() < 0.6 else None
    size = rng.choice(SIZES) if rng.random() < 0.3 else None
    kinds = ["the", "the_pl"] if definite else ["the", "the_pl", "a", "my", "this"] + (["num"] if allow_number else [])
    kind = rng.choice(kinds)
    plural = kind in ("the_pl", "num")
    noun_en, noun_fr = (en_pl, fr_pl) if plural else (en_sg, fr_sg)
    en_words = [w for w in (size and size[0], colour and colour[0], noun_en) if w]
    fr_words = [
        w for w in (size and _agree(size, gender, plural), noun_fr, colour and _agree(colour, gender, plural)) if w
    ]
    first_fr = fr_words[0]
    vowel = first_fr[0] in VOWELS
    fem = gender == "f"
    if kind == "the":
        det_en, det_fr = "the", ("la" if fem else "le")
    elif kind == "the_pl":
        det_en, det_fr = "the", "les"
    elif kind == "a":
        det_en = "an" if en_words[0][0] in "aeiou" else "a"
        det_fr = "une" if fem else "un"
    elif kind == "my":
        det_en, det_fr = "my", ("ma" if fem and not vowel else "mon")
    elif kind == "this":
        det_en, det_fr = "this", ("cette" if fem else ("cet" if vowel else "ce"))
    else:
        det_en, det_fr = rng.choice(NUMBERS)
    bare_fr = " ".join(fr_words)
    return Phrase(" ".join([det_en, *en_words]), _join(det_fr, bare_fr), plural, gender, kind, bare_fr)


def clause(rng: random.Random) -> tuple[str, str]:
    """One English sentence and its French translation."""
    form = rng.random()
    if form < 0.35:  # subject verb object, sometimes negated
        en_subj, third, fr_subj, person = rng.choice(SUBJECTS)
        en_base, en_3rd, fr_forms = rng.choice(VERBS)
        obj = noun_phrase(rng)
        verb_fr = fr_forms[person]
        if rng.random() < 0.3:
            aux = "does not" if third else "do not"
            en = f"{en_subj} {aux} {en_base} {obj.en}"
            # negation turns the indefinite article into "de": je n'ai pas de voiture
            obj_fr = _join("de", obj.bare_fr) if obj.kind == "a" else obj.fr
            fr = _join(fr_subj, "ne", verb_fr, "pas", obj_fr)
        else:
            en = f"{en_subj} {en_3rd if third else en_base} {obj.en}"
            fr = _join(fr_subj, verb_fr, obj.fr)
    elif form < 0.55:  # the X is/are COLOUR
        np_ = noun_phrase(rng, allow_number=False, definite=True)
        colour = rng.choice(COLOURS + SIZES)
        en = f"{np_.en} {'are' if np_.plural else 'is'} {colour[0]}"
        fr = f"{np_.fr} {'sont' if np_.plural else 'est'} {_agree(colour, np_.gender, np_.plural)}"
    elif form < 0.75:  # the X is PREP the Y
        a = noun_phrase(rng, allow_number=True)
        b = noun_phrase(rng, allow_number=False, definite=True)
        prep_en, prep_fr = rng.choice(PREPOSITIONS)
        place_fr = _de(b.fr) if prep_fr == "près de" else f"{prep_fr} {b.fr}"
        if prep_fr == "près de":
            place_fr = "près " + place_fr
        en = f"{a.en} {'are' if a.plural else 'is'} {prep_en} {b.en}"
        fr = f"{a.fr} {'sont' if a.plural else 'est'} {place_fr}"
    elif form < 0.9:  # there are N things
        np_ = noun_phrase(rng)
        if np_.plural:
            en, fr = f"there are {np_.en}", f"il y a {np_.fr}"
        else:
            en, fr = f"there is {np_.en}", f"il y a {np_.fr}"
    else:  # I have N things and M things
        en_subj, third, fr_subj, person = rng.choice(SUBJECTS)
        en_base, en_3rd, fr_forms = VERBS[1]
        a, b = noun_phrase(rng), noun_phrase(rng)
        en = f"{en_subj} {en_3rd if third else en_base} {a.en} and {b.en}"
        fr = _join(fr_subj, fr_forms[person], a.fr) + f" et {b.fr}"
    return en[0].upper() + en[1:] + ".", fr[0].upper() + fr[1:] + "."


def generate(n: int, seed: int = 0) -> list[dict]:
    """``n`` distinct records in the opus_books shape: ``{"id": "i", "translation": {"en": .., "fr": ..}}``."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[dict] = []
    attempts = 0
    while len(out) < n and attempts < n * 50:
        attempts += 1
        en, fr = clause(rng)
        if en in seen:
            continue
        seen.add(en)
        out.append({"id": str(len(out)), "translation": {"en": en, "fr": fr}})
    return out
