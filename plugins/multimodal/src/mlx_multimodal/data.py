"""Data stage: VQA records (image, question, answers) -> image tensors, question tokens, answer labels.

Format (TextVQA-like), a folder with ``train.jsonl`` (or ``train.json``) and optionally
``val.jsonl``/``val.json``; one record per line (or a JSON list, or ``{"data": [...]}``)::

    {"image": "images/0001.png", "question": "what color is the circle?", "answers": ["red", "red"]}

``image`` (or ``image_path``) is relative to the folder; a TextVQA ``image_id`` is looked up as
``images/<image_id>.jpg|.png``. ``answers`` may be a list (the most frequent one is the label) or
``answer`` a string. Records are read with Hugging Face ``datasets``, images with PIL, resized
with torchvision; questions are tokenised with a BERT tokenizer (a local folder, or a WordPiece
vocabulary trained on the training questions). The embedded default is a generated set of
coloured shapes written in this same format and read back by the same reader.
"""

from __future__ import annotations

import collections
import json
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlx_core import ConfigError, DataError, atomic_dir

UNK = "<unk>"
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
COLORS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 230), "yellow": (235, 210, 40)}
SHAPES = ("circle", "square", "triangle")
NUMBERS = ("zero", "one", "two", "three", "four")  # data.max_objects goes up to 4
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@dataclass
class Split:
    images: Any  # uint8 tensor [N, 3, S, S]
    input_ids: Any  # int64 tensor [N, L]
    labels: Any  # int64 tensor [N]
    questions: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class VQAData:
    train: Split
    val: Split
    answers: list[str]
    tokenizer_dir: Path
    preprocess: dict[str, Any]
    pad_token_id: int
    vocab_size: int
    majority_answer: str
    majority_baseline: float
    question_baseline: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)


# --- helpers ---------------------------------------------------------------------------------
def normalize_answer(text: Any) -> str:
    return " ".join(str(text).strip().lower().split())


# --- generated default set ---------------------------------------------------------------------
def _draw(draw: Any, shape: str, color: tuple[int, int, int], cx: int, cy: int, r: int) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=color)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)


def _question(rng: random.Random, objs: list[dict[str, Any]]) -> tuple[str, str]:
    """One question whose answer depends on the image (colour, shape, count or position)."""
    shapes = collections.Counter(o["shape"] for o in objs)
    colors = collections.Counter(o["color"] for o in objs)
    pairs = collections.Counter((o["color"], o["shape"]) for o in objs)
    # one kind drawn uniformly among those this image can answer, counting being one kind
    kinds = ["count"]
    if any(n == 1 for n in shapes.values()):
        kinds.append("color")
    if any(n == 1 for n in colors.values()):
        kinds.append("shape")
    if any(n == 1 for n in pairs.values()):
        kinds.append("position")
    kind = rng.choice(kinds)
    if kind == "count":
        kind = rng.choice(("count_shape", "count_all"))
    if kind == "color":
        o = rng.choice([o for o in objs if shapes[o["shape"]] == 1])
        return f"what color is the {o['shape']}?", o["color"]
    if kind == "shape":
        o = rng.choice([o for o in objs if colors[o["color"]] == 1])
        return f"what shape is the {o['color']} object?", o["shape"]
    if kind == "position":
        o = rng.choice([o for o in objs if pairs[(o["color"], o["shape"])] == 1])
        return f"is the {o['color']} {o['shape']} on the left or the right?", o["side"]
    if kind == "count_shape":
        s = rng.choice(SHAPES)
        return f"how many {s}s are there?", NUMBERS[shapes[s]]
    return "how many objects are there?", NUMBERS[len(objs)]


def generate_shapes(folder: Path, n_train: int, n_val: int, seed: int, canvas: int = 64, max_objects: int = 3) -> None:
    """Write the default VQA set (PNG images + train/val JSONL) into ``folder``."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    cell = canvas // 2
    for split, n in (("train", n_train), ("val", n_val)):
        lines = []
        for i in range(n):
            k = rng.randint(1, max_objects)
            cells = rng.sample(range(4), k)
            objs = []
            img = Image.new("RGB", (canvas, canvas), (245, 245, 245))
            d = ImageDraw.Draw(img)
            for c in cells:
                col, row = c % 2, c // 2
                r = rng.randint(cell // 4, cell // 3)
                cx = col * cell + cell // 2 + rng.randint(-2, 2)
                cy = row * cell + cell // 2 + rng.randint(-2, 2)
                o = {"shape": rng.choice(SHAPES), "color": rng.choice(sorted(COLORS)), "side": ("left", "right")[col]}
                _draw(d, o["shape"], COLORS[o["color"]], cx, cy, r)
                objs.append(o)
            name = f"images/{split}_{i:05d}.png"
            img.save(folder / name)
            q, a = _question(rng, objs)
            lines.append(json.dumps({"image": name, "question": q, "answers": [a]}))
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")


# --- reading -----------------------------------------------------------------------------------
def _find(folder: Path, stem: str) -> Path | None:
    for ext in (".jsonl", ".json"):
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    return None


def _json_problem(exc: Exception) -> str:
    # json.loads also raises a bare ValueError (an integer of over 4300 digits) and RecursionError
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    return (str(exc).splitlines() or [type(exc).__name__])[0][:100]


def _raw_records(path: Path, text: str) -> list[Any]:
    """The file's records parsed with the standard library (used to name the record that breaks a load)."""
    if path.suffix == ".jsonl":
        out = []
        # JSON Lines ends lines with "\n" only: str.splitlines() would also split a record at a
        # U+2028/U+0085 that JSON allows unescaped inside strings (and that Arrow reads as text)
        for n, line in enumerate(text.split("\n"), start=1):
            if line.strip(" \t\r"):  # JSON's whitespace; Arrow rejects any other "blank" line
                try:
                    out.append(json.loads(line))
                except (ValueError, RecursionError) as exc:
                    raise DataError(f"{path}:{n}: not a JSON record ({_json_problem(exc)})") from None
        return out
    try:
        top = json.loads(text)
    except (ValueError, RecursionError) as exc:
        at = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise DataError(f"{path}: not valid JSON ({_json_problem(exc)}{at})") from None
    if isinstance(top, dict) and isinstance(top.get("data"), list):
        return top["data"]  # TextVQA's {"dataset_name": ..., "data": [...]}
    if isinstance(top, list):
        return top
    raise DataError(f'{path}: expected a list of records or {{"data": [...]}}, got a JSON {type(top).__name__}')


def _type_name(v: Any) -> str:
    return {str: "string", int: "number", float: "number", bool: "boolean", list: "list", dict: "object"}.get(
        type(v), "null" if v is None else type(v).__name__
    )


def _lone_surrogate(v: Any) -> bool:
    """A string from a ``"\\ud800"`` escape: valid JSON, but not Unicode text (Arrow drops or rejects it)."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


#: the fields the reader uses, checked to read back through Arrow exactly as the file has them
USED_FIELDS = ("question", "answers", "answer", "image", "image_path", "image_id")


def check_record(rec: Any, where: str) -> None:
    """Raise a one-line ``DataError`` naming the field of ``rec`` that breaks the VQA schema."""
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected a JSON object, got {_type_name(rec)} {rec!r:.60}")
    for key in USED_FIELDS:
        values = rec.get(key) if isinstance(rec.get(key), list) else [rec.get(key)]
        bad = next((v for v in values if isinstance(v, str) and _lone_surrogate(v)), None)
        if bad is not None:
            raise DataError(f"{where}: {key!r} holds a lone surrogate escape, not Unicode text: {bad!r:.60}")
    q = rec.get("question")
    if not isinstance(q, str) or not q.strip():
        raise DataError(f"{where}: 'question' must be a non-empty string, got {_type_name(q)} {q!r:.60}")
    img = next((rec[k] for k in ("image", "image_path", "image_id") if rec.get(k) is not None), None)
    if img is None:
        raise DataError(f"{where}: no 'image', 'image_path' or 'image_id' field")
    if not isinstance(img, (str, int)) or isinstance(img, bool) or not str(img).strip():
        raise DataError(f"{where}: the image field must be a file name string, got {_type_name(img)} {img!r:.60}")
    answers = rec.get("answers")
    if answers is not None:
        if not isinstance(answers, list) or not answers:
            raise DataError(f"{where}: 'answers' must be a non-empty list of strings, got {_type_name(answers)} "
                            f"{answers!r:.60}")  # fmt: skip
        bad = [a for a in answers if not isinstance(a, (str, int, float)) or isinstance(a, bool)]
        if bad:
            raise DataError(f"{where}: 'answers' must hold strings, found {_type_name(bad[0])} {bad[0]!r:.60}")
    elif (
        not isinstance(rec.get("answer"), (str, int, float))
        or isinstance(rec["answer"], bool)
        or not str(rec["answer"]).strip()
    ):
        raise DataError(f"{where}: needs an 'answers' list or an 'answer' string, got {rec.get('answer')!r:.60}")


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of one JSON/JSONL file, loaded through Hugging Face ``datasets`` and checked one by one."""
    try:
        text = path.read_text(encoding="utf-8")  # what Arrow reads, whatever the locale
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if not text.strip():
        raise DataError(f"{path}: empty data set (no records)")
    raw = _raw_records(path, text)
    if not raw:
        raise DataError(f"{path}: empty data set (no records)")
    for i, rec in enumerate(raw, start=1):  # precise one-line errors before the Arrow load
        check_record(rec, f"{path.name} record {i}")
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    kwargs = {"field": "data"} if path.suffix == ".json" and text.lstrip().startswith("{") else {}
    with tempfile.TemporaryDirectory(prefix="mlx-mm-hf-") as cache:
        try:
            ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=cache, **kwargs)
        except Exception as exc:  # noqa: BLE001 - datasets raises many kinds for malformed files
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"{path}: records do not load as one table, e.g. a field with mixed types "
                            f"({msg[:160]})") from None  # fmt: skip
        records = ds.to_list()
    if len(records) != len(raw):
        raise DataError(f"{path}: datasets read {len(records)} records, expected {len(raw)}")
    for i, (got, want) in enumerate(zip(records, raw, strict=True), start=1):
        # Arrow gives a column one type: [1] beside [2.5] reads back as [1.0], a big integer as a float
        for key in USED_FIELDS:
            if repr(got.get(key)) != repr(want.get(key)):
                # the culprit is the first record holding numbers there (the schema's values are
                # strings), not necessarily the record whose value Arrow changed
                j = next((n for n, rec in enumerate(raw, start=1) if _holds_numbers(rec.get(key))), i)
                raise DataError(f"{path.name} record {j}: {key!r} holds {raw[j - 1].get(key)!r:.40}; datasets gives "
                                f"a field one type for all records, so values change ({want.get(key)!r:.30} read "
                                f"back as {got.get(key)!r:.30}); write it as in the other records (e.g. answers "
                                "as strings)")  # fmt: skip
    return records


def _holds_numbers(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _image_path(folder: Path, rec: dict[str, Any]) -> Path:
    name = next((rec[k] for k in ("image", "image_path") if rec.get(k) is not None), None)
    if name is not None:  # as check_record picks it: an image named 0 is a name
        return folder / str(name)
    for ext in (".jpg", ".png", ".jpeg"):
        p = folder / "images" / f"{rec['image_id']}{ext}"
        if p.exists():
            return p
    return folder / "images" / f"{rec['image_id']}.jpg"


def _answer(rec: dict[str, Any]) -> str:
    answers = rec.get("answers")
    if isinstance(answers, list) and answers:
        return collections.Counter(normalize_answer(a) for a in answers).most_common(1)[0][0]
    return normalize_answer(rec["answer"])


def decode_image(path: Path, size: int) -> Any:
    """The image as an RGB PIL image box-reduced to at most 2x``size`` a side; a string saying why not."""
    from PIL import Image, UnidentifiedImageError

    shown = str(path) if str(path).isprintable() else repr(str(path))  # a name with "\n" stays one line
    try:
        with Image.open(path) as im:
            im.load()  # decodes everything: a truncated file fails here, not later
            rgb = im.convert("RGB")
    except FileNotFoundError:
        return f"image {shown} is missing"
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        return (
            f"image {shown} is unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''})"
        )
    factor = min(rgb.size) // (2 * size)
    return rgb.reduce(factor) if factor > 1 else rgb  # bounds memory; torchvision does the exact resize


def load_split(folder: Path, path: Path, size: int, bad_image: str, counts: dict[str, int], cache: dict) -> list:
    """(decoded image, question, answer) per usable record of ``path``; no torch needed yet."""
    out = []
    for i, rec in enumerate(read_records(path), start=1):
        where = f"{path.name} record {i}"
        img_path = _image_path(folder, rec)
        key = str(img_path)
        if key not in cache:
            cache[key] = decode_image(img_path, size)
        if isinstance(cache[key], str):
            if bad_image == "error":
                raise DataError(f"{where}: {cache[key]} (set data.bad_image=skip to skip such records)")
            counts["skipped_bad_image"] += 1
            continue
        out.append((cache[key], rec["question"].strip(), _answer(rec)))
    return out


def to_tensors(rows: list, size: int) -> list:
    """Decoded images -> uint8 tensors [3, size, size] resized with torchvision (shared images once)."""
    from torchvision.transforms import v2

    resize = v2.Compose([v2.PILToTensor(), v2.Resize((size, size), antialias=True)])
    done: dict[int, Any] = {}
    out = []
    for img, q, a in rows:
        if id(img) not in done:
            done[id(img)] = resize(img)
        out.append((done[id(img)], q, a))
    return out


# --- tokenizer -----------------------------------------------------------------------------------
def train_wordpiece(questions: list[str], vocab_size: int, out_dir: Path) -> None:
    """A WordPiece vocabulary trained on the questions, saved as a ``BertTokenizerFast`` folder."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    tok.train_from_iterator(questions, trainer=trainer)
    # The trainer breaks ties between equally frequent merges in hash order, so its vocabulary (and
    # every id) varies from run to run, and with it the whole training run. Keep what is stable:
    # the characters and the pieces the training questions are actually split into, sorted.
    used = {t for enc in tok.encode_batch(questions) for t in enc.tokens}
    alphabet = {t for t in tok.get_vocab() if len(t.removeprefix("##")) == 1}
    learnt = sorted((used | alphabet) - set(SPECIAL_TOKENS))
    vocab = [(t, i) for i, t in enumerate([*SPECIAL_TOKENS, *learnt])]
    with atomic_dir(out_dir) as tmp:
        (tmp / "vocab.txt").write_text("".join(f"{t}\n" for t, _ in vocab))
        # transformers 5 takes the vocabulary as ``vocab`` (a dict or a vocab.txt path); ``vocab_file``
        # would be silently ignored and leave a tokenizer that knows only the special tokens
        BertTokenizerFast(vocab=dict(vocab), do_lower_case=True).save_pretrained(str(tmp))


def load_tokenizer(folder: str | Path) -> Any:
    from transformers import BertTokenizerFast

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"tokenizer folder {folder} does not exist")
    try:
        return BertTokenizerFast.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - transformers raises OSError/ValueError/... for bad folders
        raise DataError(
            f"tokenizer folder {folder} is not a BERT tokenizer ({str(exc).splitlines()[0][:160]})"
        ) from None


def tokenize(tokenizer: Any, questions: list[str], max_length: int) -> tuple[Any, int]:
    """Token ids [N, max_length] and how many questions were truncated."""
    full = tokenizer(questions, add_special_tokens=True, truncation=False)["input_ids"]
    truncated = sum(len(ids) > max_length for ids in full)
    enc = tokenizer(
        questions, max_length=max_length, truncation=True, padding="max_length", return_tensors="pt"
    )  # fmt: skip
    return enc["input_ids"], truncated


# --- the stage -----------------------------------------------------------------------------------
def build_data(ctx: Any) -> VQAData:
    cfg = ctx.config.data
    if ctx.config.model.size == "reduced" and cfg.image_size % ctx.config.model.patch_size:
        raise ConfigError(
            f"data.image_size={cfg.image_size} is not a multiple of model.patch_size={ctx.config.model.patch_size}"
        )
    if ctx.config.model.size == "full" and cfg.image_size % 16:
        raise ConfigError(f"data.image_size={cfg.image_size} is not a multiple of 16 (the full FLAVA's patch size)")
    counts: dict[str, int] = collections.Counter()

    if cfg.path:
        folder = Path(cfg.path).expanduser()
        if not folder.is_dir():
            raise DataError(f"data.path {folder} is not a folder")
    else:
        folder = ctx.path("data", "shapes")
        if not (ctx.resumed and (folder / "train.jsonl").exists()):
            with atomic_dir(folder) as tmp:
                generate_shapes(tmp, cfg.n_train, cfg.n_val, ctx.seed, max_objects=cfg.max_objects)
            ctx.add_artifact(folder / "train.jsonl", kind="dataset", split="train", records=cfg.n_train)
            ctx.add_artifact(folder / "val.jsonl", kind="dataset", split="val", records=cfg.n_val)
    train_file = _find(folder, "train")
    if train_file is None:
        raise DataError(f"{folder}: no train.jsonl or train.json")
    val_file = _find(folder, "val")

    cache: dict = {}
    train = load_split(folder, train_file, cfg.image_size, cfg.bad_image, counts, cache)
    if val_file is not None:
        val = load_split(folder, val_file, cfg.image_size, cfg.bad_image, counts, cache)
    else:
        rows = list(train)
        random.Random(ctx.seed).shuffle(rows)
        n_val = max(1, int(round(len(rows) * cfg.val_fraction)))
        if len(rows) < 2:
            raise DataError(f"{train_file}: needs at least 2 usable records to hold one out, found {len(rows)}")
        train, val = rows[n_val:], rows[:n_val]
    if not train:
        raise DataError(f"{train_file}: no usable training records ({counts['skipped_bad_image']} skipped)")
    if not val:
        raise DataError(f"{val_file or train_file}: no usable held-out records ({counts['skipped_bad_image']} skipped)")

    # answer vocabulary
    if cfg.answers_file:
        p = Path(cfg.answers_file).expanduser()
        try:
            lines = p.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read answers_file {p}: {exc}") from None
        answers = list(dict.fromkeys(a for a in (normalize_answer(x) for x in lines) if a))
        if not answers:
            raise DataError(f"answers_file {p} has no answers (expected one answer per line)")
    else:
        answers = [
            a for a, _ in sorted(collections.Counter(a for _, _, a in train).items(), key=lambda kv: (-kv[1], kv[0]))
        ]
    if cfg.unknown_answer == "unknown" and UNK not in answers:
        answers = [UNK, *answers]
    index = {a: i for i, a in enumerate(answers)}

    def labelled(rows: list, split: str) -> list:
        out = []
        for img, q, a in rows:
            if a not in index:
                counts[f"unknown_answer_{split}"] += 1
                if cfg.unknown_answer == "drop":
                    continue
                a = UNK
            out.append((img, q, index[a]))
        return out

    train, val = labelled(train, "train"), labelled(val, "val")
    if not train:
        raise DataError(f"{train_file}: no training record has an answer in the vocabulary")
    if not val:
        raise DataError("no held-out record has an answer in the vocabulary")

    # tokenizer
    tok_dir = ctx.path("data", "tokenizer")
    if cfg.tokenizer:
        src = Path(cfg.tokenizer).expanduser()
        load_tokenizer(src)  # validates before copying
        if tok_dir.exists():
            shutil.rmtree(tok_dir)
        with atomic_dir(tok_dir) as tmp:
            shutil.copytree(src, tmp, dirs_exist_ok=True)
    elif not (ctx.resumed and (tok_dir / "vocab.txt").exists()):
        train_wordpiece([q for _, q, _ in train], cfg.wordpiece_vocab_size, tok_dir)
    tokenizer = load_tokenizer(tok_dir)
    if tokenizer.pad_token_id is None:
        raise DataError(f"tokenizer {cfg.tokenizer or tok_dir} has no [PAD] token")
    if len(tokenizer) <= len(SPECIAL_TOKENS):
        raise DataError(f"tokenizer {cfg.tokenizer or tok_dir} has no vocabulary beyond its special tokens")

    import torch

    def tensors(rows: list, split: str) -> Split:
        rows = to_tensors(rows, cfg.image_size)
        qs = [q for _, q, _ in rows]
        ids, truncated = tokenize(tokenizer, qs, cfg.max_length)
        counts[f"truncated_questions_{split}"] += truncated
        return Split(
            images=torch.stack([img for img, _, _ in rows]),
            input_ids=ids.long(),
            labels=torch.tensor([lab for _, _, lab in rows], dtype=torch.long),
            questions=qs,
        )

    tr, va = tensors(train, "train"), tensors(val, "val")
    label_counts = collections.Counter(tr.labels.tolist())
    majority = label_counts.most_common(1)[0][0]
    baseline = float((va.labels == majority).float().mean())
    # what the question alone gives: the most frequent training answer of each question text
    by_question: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for q, lab in zip(tr.questions, tr.labels.tolist(), strict=True):
        by_question[q][lab] += 1
    guess = [by_question[q].most_common(1)[0][0] if q in by_question else majority for q in va.questions]
    question_baseline = float((torch.tensor(guess) == va.labels).float().mean())

    with ctx.atomic_path("data", "answers.txt") as tmp:
        tmp.write_text("".join(f"{a}\n" for a in answers))
    ctx.add_artifact(ctx.path("data", "answers.txt"), kind="vocabulary", answers=len(answers))
    ctx.add_artifact(tok_dir / "vocab.txt", kind="tokenizer", tokens=len(tokenizer))
    counts = {k: int(v) for k, v in counts.items()}
    for key in ("skipped_bad_image", "truncated_questions_train", "truncated_questions_val",
                "unknown_answer_train", "unknown_answer_val"):  # fmt: skip
        counts.setdefault(key, 0)
    ctx.log_metrics({"train_records": len(tr), "val_records": len(va), "answers": len(answers),
                     "majority_baseline": baseline, "question_only_baseline": question_baseline, **counts})  # fmt: skip
    if counts["truncated_questions_train"] or counts["truncated_questions_val"]:
        ctx.note(
            f"{counts['truncated_questions_train'] + counts['truncated_questions_val']} question(s) longer than "
            f"data.max_length={cfg.max_length} tokens were truncated"
        )
    if counts["skipped_bad_image"]:
        ctx.note(f"{counts['skipped_bad_image']} record(s) with a missing or unreadable image were skipped")
    n_unknown = counts["unknown_answer_train"] + counts["unknown_answer_val"]
    if n_unknown:
        what = "mapped to <unk>" if cfg.unknown_answer == "unknown" else "dropped"
        ctx.note(f"{n_unknown} record(s) with an answer outside the vocabulary were {what}")
    return VQAData(
        train=tr,
        val=va,
        answers=answers,
        tokenizer_dir=tok_dir,
        preprocess={
            "image_size": cfg.image_size,
            "mean": list(MEAN),
            "std": list(STD),
            "max_length": cfg.max_length,
            "pad_token_id": int(tokenizer.pad_token_id),
        },  # fmt: skip
        pad_token_id=int(tokenizer.pad_token_id),
        vocab_size=len(tokenizer),
        majority_answer=answers[majority],
        majority_baseline=baseline,
        question_baseline=question_baseline,
        counts=counts,
    )


def to_float(images: Any) -> Any:
    """uint8 [N,3,S,S] -> normalised float, the same arithmetic the exported preprocessing uses."""
    x = images.float() / 255.0
    mean = x.new_tensor(MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std
