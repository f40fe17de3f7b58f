"""VQA data sets as downloaded: VQA v2 (questions + annotations JSON, COCO images) and TextVQA.

Each layout turns its files into the reader's records ``{"image", "question", "answers"}`` (image
paths relative to ``data.path``), checked by ``records.check_record`` like any other record:

- **VQA v2** (visualqa.org): ``v2_OpenEnded_mscoco_<split>_questions.json`` (``{"questions": [{image_id,
  question, question_id}]}``) and ``v2_mscoco_<split>_annotations.json`` (``{"annotations": [{question_id,
  answers: [{answer, answer_confidence, answer_id}] x 10, multiple_choice_answer, ...}]}``), images
  ``<split>/COCO_<split>_<12-digit image_id>.jpg``; ``train2014`` is the training split, ``val2014``
  the held-out one.
- **TextVQA** (textvqa.org): ``TextVQA_0.5.1_<split>.json`` (``{"data": [{question, image_id, answers,
  ...}]}``) with images ``train_images/<image_id>.jpg`` (the train and val images share that folder).

A folder with neither is read as the plugin's own records layout (``train.jsonl``/``train.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlx_core import DataError

from .records import check_record

VQA_SPLITS = {"train": "train2014", "val": "val2014"}
TEXTVQA_VERSION = "0.5.1"


@dataclass
class Layout:
    name: str  # "vqa-v2" | "textvqa"
    folder: Path
    files: dict[str, tuple[Path, ...]]  # split -> the files its records come from

    def has(self, split: str) -> bool:
        return split in self.files

    def source(self, split: str) -> Path:
        """The file a split's record errors name (VQA v2: the questions JSON, whose order they follow)."""
        return self.files[split][0]

    def records(self, split: str) -> list[dict[str, Any]]:
        recs = (
            _vqa_v2(self.folder, split, *self.files[split]) if self.name == "vqa-v2" else _textvqa(self.files[split][0])
        )
        if not recs:
            raise DataError(f"{self.source(split)}: empty data set (no records)")
        for i, rec in enumerate(recs, start=1):
            check_record(rec, f"{self.source(split).name} record {i}")
        return recs


def vqa_v2_files(split: str) -> tuple[str, str]:
    return f"v2_OpenEnded_mscoco_{split}_questions.json", f"v2_mscoco_{split}_annotations.json"


def coco_image(split: str, image_id: int) -> str:
    return f"{split}/COCO_{split}_{image_id:012d}.jpg"


def find_layout(folder: Path) -> Layout | None:
    """The download layout of ``folder`` (VQA v2 or TextVQA), or None for the records layout."""
    files: dict[str, tuple[Path, ...]] = {}
    for split, coco in VQA_SPLITS.items():
        questions, annotations = (folder / n for n in vqa_v2_files(coco))
        if questions.is_file() != annotations.is_file():
            have, lacks = (questions, annotations) if questions.is_file() else (annotations, questions)
            raise DataError(f"{have} has no {lacks.name} beside it (VQA v2 needs both the questions and the "
                            "annotations JSON of a split)")  # fmt: skip
        if questions.is_file():
            files[split] = (questions, annotations)
    if files:
        if "train" not in files:
            raise DataError(f"{folder}: VQA v2 without the training split (expected {vqa_v2_files('train2014')[0]})")
        return Layout("vqa-v2", folder, files)
    for split in ("train", "val"):
        f = folder / f"TextVQA_{TEXTVQA_VERSION}_{split}.json"
        if f.is_file():
            files[split] = (f,)
    if files:
        if "train" not in files:
            raise DataError(f"{folder}: TextVQA without TextVQA_{TEXTVQA_VERSION}_train.json")
        return Layout("textvqa", folder, files)
    return None


def _load_json(path: Path, key: str) -> list:
    try:
        top = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    except (ValueError, RecursionError) as exc:
        at = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise DataError(f"{path}: not valid JSON ({msg}{at})") from None
    if not isinstance(top, dict) or not isinstance(top.get(key), list):
        got = f"keys {sorted(top)[:5]}" if isinstance(top, dict) else f"a JSON {type(top).__name__}"
        raise DataError(f'{path}: expected an object with a "{key}" list, got {got}')
    return top[key]


def _int_id(value: Any, where: str, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise DataError(f"{where}: {field!r} must be an integer, got {value!r:.40}")
    return value


def _vqa_v2(folder: Path, split: str, questions: Path, annotations: Path) -> list[dict[str, Any]]:
    coco = VQA_SPLITS[split]
    answers_of: dict[int, list[str]] = {}
    for i, ann in enumerate(_load_json(annotations, "annotations"), start=1):
        where = f"{annotations.name} annotation {i}"
        if not isinstance(ann, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(ann).__name__}")
        qid = _int_id(ann.get("question_id"), where, "question_id")
        answers = ann.get("answers")
        if not isinstance(answers, list) or not answers:
            raise DataError(f"{where}: 'answers' must be a list of {{answer, answer_confidence, answer_id}}, "
                            f"got {answers!r:.60}")  # fmt: skip
        bad = next((a for a in answers if not isinstance(a, dict) or not isinstance(a.get("answer"), str)), None)
        if bad is not None:
            raise DataError(f'{where}: each answer must be an object with an "answer" string, got {bad!r:.60}')
        answers_of[qid] = [a["answer"] for a in answers]
    recs = []
    for i, q in enumerate(_load_json(questions, "questions"), start=1):
        where = f"{questions.name} question {i}"
        if not isinstance(q, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(q).__name__}")
        qid = _int_id(q.get("question_id"), where, "question_id")
        if qid not in answers_of:
            raise DataError(f"{where}: question_id {qid} has no annotation in {annotations.name}")
        image_id = _int_id(q.get("image_id"), where, "image_id")
        recs.append({"image": coco_image(coco, image_id), "question": q.get("question"), "answers": answers_of[qid]})
    return recs


def _textvqa(path: Path) -> list[dict[str, Any]]:
    recs = []
    for i, rec in enumerate(_load_json(path, "data"), start=1):
        if not isinstance(rec, dict):
            raise DataError(f"{path.name} record {i}: expected a JSON object, got {type(rec).__name__}")
        image_id = rec.get("image_id")
        if not isinstance(image_id, str) or not image_id.strip() or "/" in image_id:
            raise DataError(f"{path.name} record {i}: 'image_id' must be a file name stem, got {image_id!r:.40}")
        recs.append({"image": f"train_images/{image_id}.jpg", "question": rec.get("question"),
                     "answers": rec.get("answers")})  # fmt: skip
    return recs
