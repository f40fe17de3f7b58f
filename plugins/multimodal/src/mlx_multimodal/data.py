"""Data stage: VQA records (image, question, answers) -> image tensors, question tokens, answer labels.

Format (TextVQA-like), a folder with ``train.jsonl`` (or ``train.json``) and optionally
``val.jsonl``/``val.json``; one record per line (or a JSON list, or ``{"data": [...]}``)::

    {"image": "images/0001.png", "question": "what color is the circle?", "answers": ["red", "red"]}

``image`` (or ``image_path``) is relative to the folder; a TextVQA ``image_id`` is looked up as
``images/<image_id>.jpg|.png``. ``answers`` may be a list (the most frequent one is the label) or
``answer`` a string. Records are read with Hugging Face ``datasets``, images with PIL, resized
with torchvision; questions are tokenised with a BERT tokenizer (a local folder, or a WordPiece
vocabulary trained on the training questions). The embedded default is the generated set of
coloured shapes of ``sample.py``, written in this same format and read back by the same reader
(``records.py``).
"""

from __future__ import annotations

import collections
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlx_core import ConfigError, DataError, atomic_dir

from .layouts import TEXTVQA_VERSION, find_layout, vqa_v2_files
from .records import read_records, split_file
from .sample import generate_shapes

UNK = "<unk>"
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@dataclass
class Split:
    images: Any  # uint8 tensor [N, 3, S, S]
    input_ids: Any  # int64 tensor [N, L]
    labels: Any  # int64 tensor [N]
    questions: list[str]
    #: every given answer of each record, normalised (the VQA accuracy scores against them)
    answers: list[list[str]] = field(default_factory=list)

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


def _image_path(folder: Path, rec: dict[str, Any]) -> Path:
    name = next((rec[k] for k in ("image", "image_path") if rec.get(k) is not None), None)
    if name is not None:  # as check_record picks it: an image named 0 is a name
        return folder / str(name)
    for ext in (".jpg", ".png", ".jpeg"):
        p = folder / "images" / f"{rec['image_id']}{ext}"
        if p.exists():
            return p
    return folder / "images" / f"{rec['image_id']}.jpg"


def _all_answers(rec: dict[str, Any]) -> list[str]:
    answers = rec.get("answers")
    if isinstance(answers, list) and answers:
        return [normalize_answer(a) for a in answers]
    return [normalize_answer(rec["answer"])]


def _answer(rec: dict[str, Any]) -> str:
    """The label: the most frequent given answer (ties: the first given)."""
    return collections.Counter(_all_answers(rec)).most_common(1)[0][0]


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


def load_split(folder: Path, path: Path, size: int, bad_image: str, counts: dict[str, int], cache: dict,
               records: list[dict[str, Any]] | None = None) -> list:  # fmt: skip
    """(decoded image, question, answer, all answers) per usable record of ``path`` (or of
    ``records``, read from ``path`` by a download layout); no torch needed yet."""
    out = []
    for i, rec in enumerate(read_records(path) if records is None else records, start=1):
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
        out.append((cache[key], rec["question"].strip(), _answer(rec), _all_answers(rec)))
    return out


def to_tensors(rows: list, size: int) -> list:
    """Decoded images -> uint8 tensors [3, size, size] resized with torchvision (shared images once)."""
    from torchvision.transforms import v2

    resize = v2.Compose([v2.PILToTensor(), v2.Resize((size, size), antialias=True)])
    done: dict[int, Any] = {}
    out = []
    for img, *rest in rows:
        if id(img) not in done:
            done[id(img)] = resize(img)
        out.append((done[id(img)], *rest))
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
    dist = getattr(ctx, "dist", None)
    if dist is None or dist.world_size <= 1:
        return _build(ctx, writer=True)
    # several processes (mlx run --nproc N): each node's first rank writes the generated set, the
    # tokenizer and answers.txt into the run; the node's other ranks wait, then read those files, so
    # every rank has the same vocabulary (the trained WordPiece one is not reproducible run to run)
    import torch.distributed as tdist

    _join_group(ctx)
    if dist.local_rank == 0:
        data = _build(ctx, writer=True)
        tdist.barrier()
        return data
    tdist.barrier()
    return _build(ctx, writer=False)


def _join_group(ctx: Any) -> None:
    """Join torchrun's process group now, as the engine would (gloo on the CPU, NCCL on CUDA, the
    launcher's collective timeout); the engine's fit() then trains in it."""
    from datetime import timedelta

    import ignite.distributed as idist
    import torch.distributed as tdist

    from mlx_torch.dist import backend_for, timeout_s

    if not tdist.is_initialized():
        idist.initialize(backend_for(ctx.device), timeout=timedelta(seconds=timeout_s(ctx)))


def _build(ctx: Any, writer: bool) -> VQAData:
    """The data stage; ``writer``: this process writes the run's data files (else reads them)."""
    cfg = ctx.config.data
    _check_sizes(ctx.config)
    counts: dict[str, int] = collections.Counter()
    train, val, train_file = _read_splits(ctx, _source_folder(ctx, writer), counts)
    answers = _answer_vocabulary(cfg, train)
    index = {a: i for i, a in enumerate(answers)}
    train, val = (
        _label(train, index, "train", cfg.unknown_answer, counts),
        _label(val, index, "val", cfg.unknown_answer, counts),
    )
    if not train:
        raise DataError(f"{train_file}: no training record has an answer in the vocabulary")
    if not val:
        raise DataError("no held-out record has an answer in the vocabulary")
    tokenizer, tok_dir = _prepare_tokenizer(ctx, [r[1] for r in train], writer)
    tr, va = _to_split(train, "train", cfg, tokenizer, counts), _to_split(val, "val", cfg, tokenizer, counts)
    majority, baseline, question_baseline = _baselines(tr, va)

    if writer:
        with ctx.atomic_path("data", "answers.txt") as tmp:
            tmp.write_text("".join(f"{a}\n" for a in answers))
    ctx.add_artifact(ctx.path("data", "answers.txt"), kind="vocabulary", answers=len(answers))
    ctx.add_artifact(tok_dir / "vocab.txt", kind="tokenizer", tokens=len(tokenizer))
    counts = _report_counts(ctx, counts)
    ctx.log_metrics({"train_records": len(tr), "val_records": len(va), "answers": len(answers),
                     "majority_baseline": baseline, "question_only_baseline": question_baseline, **counts})  # fmt: skip
    pad = int(tokenizer.pad_token_id)
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
            "pad_token_id": pad,
        },  # fmt: skip
        pad_token_id=pad,
        vocab_size=len(tokenizer),
        majority_answer=answers[majority],
        majority_baseline=baseline,
        question_baseline=question_baseline,
        counts=counts,
    )


def _check_sizes(config: Any) -> None:
    """Images must split into whole patches of the model (before any data work)."""
    size, model = config.data.image_size, config.model
    if model.size == "reduced" and size % model.patch_size:
        raise ConfigError(f"data.image_size={size} is not a multiple of model.patch_size={model.patch_size}")
    if model.size == "full" and size % 16:
        raise ConfigError(f"data.image_size={size} is not a multiple of 16 (the full FLAVA's patch size)")


def _source_folder(ctx: Any, writer: bool = True) -> Path:
    """The user's folder (``data.path``), or the generated set written into the run (kept on resume)."""
    cfg = ctx.config.data
    if cfg.path:
        folder = Path(cfg.path).expanduser()
        if not folder.is_dir():
            raise DataError(f"data.path {folder} is not a folder")
        return folder
    folder = ctx.path("data", "shapes")
    if not ((ctx.resumed or not writer) and (folder / "train.jsonl").exists()):
        with atomic_dir(folder) as tmp:
            generate_shapes(tmp, cfg.n_train, cfg.n_val, ctx.seed, max_objects=cfg.max_objects)
        ctx.add_artifact(folder / "train.jsonl", kind="dataset", split="train", records=cfg.n_train)
        ctx.add_artifact(folder / "val.jsonl", kind="dataset", split="val", records=cfg.n_val)
    return folder


def _read_splits(ctx: Any, folder: Path, counts: dict[str, int]) -> tuple[list, list, Path]:
    """(train rows, held-out rows, the train file): ``val`` from its own file, else held out of train."""
    cfg = ctx.config.data
    layout = find_layout(folder)
    if layout is not None:  # VQA v2 / TextVQA as downloaded
        ctx.record("data_layout", layout.name)
        train_file, val_file = layout.source("train"), layout.source("val") if layout.has("val") else None
    else:
        train_file, val_file = split_file(folder, "train"), split_file(folder, "val")
    if train_file is None:
        raise DataError(f"{folder}: no train.jsonl or train.json, nor VQA v2 ({vqa_v2_files('train2014')[0]}) "
                        f"or TextVQA (TextVQA_{TEXTVQA_VERSION}_train.json) files")  # fmt: skip
    cache: dict = {}

    def load(split: str, path: Path) -> list:
        recs = layout.records(split) if layout is not None else None
        return load_split(folder, path, cfg.image_size, cfg.bad_image, counts, cache, recs)

    train = load("train", train_file)
    if val_file is not None:
        val = load("val", val_file)
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
    return train, val, train_file


def _answer_vocabulary(cfg: Any, train: list) -> list[str]:
    """``data.answers_file`` (one answer a line), else the training answers, most frequent first."""
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
        freq = collections.Counter(r[2] for r in train)
        answers = [a for a, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))]
    if cfg.unknown_answer == "unknown" and UNK not in answers:
        answers = [UNK, *answers]
    return answers


def _label(rows: list, index: dict[str, int], split: str, unknown_answer: str, counts: dict[str, int]) -> list:
    """(image, question, label id) rows; an answer outside the vocabulary is dropped or mapped to <unk>."""
    out = []
    for img, q, a, given in rows:
        if a not in index:
            counts[f"unknown_answer_{split}"] += 1
            if unknown_answer == "drop":
                continue
            a = UNK
        out.append((img, q, index[a], given))
    return out


def _prepare_tokenizer(ctx: Any, questions: list[str], writer: bool = True) -> tuple[Any, Path]:
    """The run's tokenizer folder (copied from ``data.tokenizer`` or trained on ``questions``), loaded."""
    cfg = ctx.config.data
    tok_dir = ctx.path("data", "tokenizer")
    reuse = (ctx.resumed or not writer) and (tok_dir / "vocab.txt").exists()
    if cfg.tokenizer and not (reuse and not writer):
        src = Path(cfg.tokenizer).expanduser()
        load_tokenizer(src)  # validates before copying
        if tok_dir.exists():
            shutil.rmtree(tok_dir)
        with atomic_dir(tok_dir) as tmp:
            shutil.copytree(src, tmp, dirs_exist_ok=True)
    elif not cfg.tokenizer and not reuse:
        train_wordpiece(questions, cfg.wordpiece_vocab_size, tok_dir)
    tokenizer = load_tokenizer(tok_dir)
    if tokenizer.pad_token_id is None:
        raise DataError(f"tokenizer {cfg.tokenizer or tok_dir} has no [PAD] token")
    if len(tokenizer) <= len(SPECIAL_TOKENS):
        raise DataError(f"tokenizer {cfg.tokenizer or tok_dir} has no vocabulary beyond its special tokens")
    return tokenizer, tok_dir


def _to_split(rows: list, split: str, cfg: Any, tokenizer: Any, counts: dict[str, int]) -> Split:
    import torch

    rows = to_tensors(rows, cfg.image_size)
    qs = [r[1] for r in rows]
    ids, truncated = tokenize(tokenizer, qs, cfg.max_length)
    counts[f"truncated_questions_{split}"] += truncated
    return Split(
        images=torch.stack([r[0] for r in rows]),
        input_ids=ids.long(),
        labels=torch.tensor([r[2] for r in rows], dtype=torch.long),
        questions=qs,
        answers=[r[3] for r in rows],
    )


def _baselines(tr: Split, va: Split) -> tuple[int, float, float]:
    """(majority label, its held-out accuracy, the held-out accuracy of the question alone: the most
    frequent training answer of each question text)."""
    import torch

    majority = collections.Counter(tr.labels.tolist()).most_common(1)[0][0]
    baseline = float((va.labels == majority).float().mean())
    by_question: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for q, lab in zip(tr.questions, tr.labels.tolist(), strict=True):
        by_question[q][lab] += 1
    guess = [by_question[q].most_common(1)[0][0] if q in by_question else majority for q in va.questions]
    return majority, baseline, float((torch.tensor(guess) == va.labels).float().mean())


def _report_counts(ctx: Any, counts: dict[str, int]) -> dict[str, int]:
    """Every count (zeros included) as plain ints; a note in the manifest for each kind of loss."""
    counts = {k: int(v) for k, v in counts.items()}
    for key in ("skipped_bad_image", "truncated_questions_train", "truncated_questions_val",
                "unknown_answer_train", "unknown_answer_val"):  # fmt: skip
        counts.setdefault(key, 0)
    truncated = counts["truncated_questions_train"] + counts["truncated_questions_val"]
    if truncated:
        ctx.note(
            f"{truncated} question(s) longer than data.max_length={ctx.config.data.max_length} tokens were truncated"
        )
    if counts["skipped_bad_image"]:
        ctx.note(f"{counts['skipped_bad_image']} record(s) with a missing or unreadable image were skipped")
    n_unknown = counts["unknown_answer_train"] + counts["unknown_answer_val"]
    if n_unknown:
        what = "mapped to <unk>" if ctx.config.data.unknown_answer == "unknown" else "dropped"
        ctx.note(f"{n_unknown} record(s) with an answer outside the vocabulary were {what}")
    return counts


def to_float(images: Any) -> Any:
    """uint8 [N,3,S,S] -> normalised float, the same arithmetic the exported preprocessing uses."""
    x = images.float() / 255.0
    mean = x.new_tensor(MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std
