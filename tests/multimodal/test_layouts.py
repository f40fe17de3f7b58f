"""VQA v2 and TextVQA as downloaded (small generated copies of their layouts), and the VQA accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlx_multimodal import data as D
from mlx_multimodal.metrics import vqa_accuracy, vqa_score

from mlx_core import DataError

from .conftest import error_line, run, stage_ctx

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30)}


def _jpg(path: Path, colour: tuple[int, int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 24), colour).save(path, "JPEG")


def ten_answers(main: str, other: str, n_main: int = 8) -> list[str]:
    return [main] * n_main + [other] * (10 - n_main)


def write_vqa_v2(root: Path, n: dict[str, int] | None = None) -> Path:
    """VQA v2's files: questions + annotations JSON per split, COCO-named JPEGs under train2014/, val2014/."""
    names = sorted(COLOURS)
    qid = 0
    for split, count in (n or {"train2014": 12, "val2014": 6}).items():
        questions, annotations = [], []
        for i in range(count):
            qid += 1
            image_id = 100 + i  # the real ids are arbitrary integers, zero-padded to 12 digits in the name
            colour = names[i % len(names)]
            _jpg(root / split / f"COCO_{split}_{image_id:012d}.jpg", COLOURS[colour])
            questions.append({"image_id": image_id, "question": "What color is the image?", "question_id": qid})
            answers = ten_answers(colour, "dark " + colour)
            annotations.append({"question_id": qid, "image_id": image_id, "question_type": "what color is the",
                                "answer_type": "other", "multiple_choice_answer": colour,
                                "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": j + 1}
                                            for j, a in enumerate(answers)]})  # fmt: skip
        info = {"info": {}, "license": {}, "data_subtype": split, "data_type": "mscoco"}
        (root / f"v2_OpenEnded_mscoco_{split}_questions.json").write_text(
            json.dumps({**info, "task_type": "Open-Ended", "questions": questions})
        )  # fmt: skip
        (root / f"v2_mscoco_{split}_annotations.json").write_text(json.dumps({**info, "annotations": annotations}))
    return root


def write_textvqa(root: Path) -> Path:
    names = sorted(COLOURS)
    for split, count in (("train", 12), ("val", 6)):
        data = []
        for i in range(count):
            image_id = f"{split[0]}{i:04x}a1b2c3d4"  # TextVQA's ids are hex strings
            colour = names[i % len(names)]
            _jpg(root / "train_images" / f"{image_id}.jpg", COLOURS[colour])
            data.append({"question": "what colour is the sign?", "image_id": image_id, "image_classes": ["Sign"],
                         "flickr_original_url": "", "flickr_300k_url": "", "image_width": 24, "image_height": 24,
                         "answers": ten_answers(colour, "unanswerable", 9), "question_tokens": [],
                         "question_id": i, "set_name": split})  # fmt: skip
        (root / f"TextVQA_0.5.1_{split}.json").write_text(
            json.dumps({"dataset_type": split, "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": data})
        )  # fmt: skip
    return root


def test_vqa_accuracy_official_and_simple_forms():
    given = ten_answers("red", "blue", 3)  # 3 humans said red
    # official: leaving out one of the 3 "red" leaves 2 -> 2/3; leaving out a "blue" leaves 3 -> 1
    assert vqa_score("red", given) == pytest.approx((3 * 2 / 3 + 7 * 1) / 10)
    assert vqa_score("blue", given) == 1.0 and vqa_score("green", given) == 0.0
    assert vqa_score("red", ten_answers("red", "blue", 2)) == pytest.approx((2 * 1 / 3 + 8 * 2 / 3) / 10)
    assert vqa_score("red", ["red"]) == 1.0 and vqa_score("red", ["red", "blue"]) == 0.5
    assert vqa_accuracy(["red", "x"], [given, ["x"]]) == pytest.approx((0.9 + 1.0) / 2)


def test_vqa_v2_as_downloaded_trains_and_records_the_vqa_accuracy(tmp_path):
    from mlx_multimodal.model import build_model
    from mlx_multimodal.train import train

    root = write_vqa_v2(tmp_path / "vqa")
    ctx = stage_ctx(tmp_path, path=str(root), wordpiece_vocab_size=60,
                    model={"hidden_size": 16, "image_layers": 1, "text_layers": 1},
                    train={"epochs": 1, "batch_size": 6})  # fmt: skip
    data = D.build_data(ctx)
    assert (len(data.train), len(data.val)) == (12, 6)
    assert set(data.answers) == {"<unk>", "red", "blue", "green"}  # labels: the most frequent answer
    assert data.val.answers[0] == ten_answers("blue", "dark blue")
    model = train(ctx, data, build_model(ctx, data))
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["records"]["data_layout"] == "vqa-v2"
    logged = manifest["stages"]["data"]["metrics"]["final_val_vqa_acc"]
    from mlx_multimodal.metrics import split_vqa_accuracy

    assert logged == pytest.approx(split_vqa_accuracy(model, data.val, data.answers, "cpu"))
    # a right answer scores 1 (8 of 10 humans), a wrong one 0: here the two accuracies coincide
    assert logged == pytest.approx(manifest["stages"]["data"]["metrics"]["final_val_acc"])


def test_textvqa_layout_reads_train_images(tmp_path):
    root = write_textvqa(tmp_path / "textvqa")
    data = D.build_data(stage_ctx(tmp_path, path=str(root)))
    assert (len(data.train), len(data.val)) == (12, 6)
    assert data.val.answers[1] == ten_answers("green", "unanswerable", 9)


def _expect(root: Path, tmp_path: Path, match: str) -> None:
    with pytest.raises(DataError, match=match):
        D.build_data(stage_ctx(tmp_path / str(len(list(tmp_path.iterdir()))), path=str(root)))


def test_bad_vqa_v2_and_textvqa_files_are_one_line_errors(tmp_path):
    root = write_vqa_v2(tmp_path / "vqa", {"train2014": 4})
    ann = root / "v2_mscoco_train2014_annotations.json"
    good = ann.read_text()
    ann.write_text(good.replace('{"answer": "red", "answer_confidence": "yes", "answer_id": 1}', '"red"', 1))
    _expect(root, tmp_path, r'annotations.json annotation 3: each answer must be an object with an "answer" string')
    ann.write_text(good.replace('"question_id": 2,', '"question_id": 99,', 1))
    _expect(root, tmp_path, r"questions.json question 2: question_id 2 has no annotation in v2_mscoco_train2014_")
    ann.write_text(good[:-5])
    _expect(root, tmp_path, r"annotations.json: not valid JSON \(")
    ann.write_text(json.dumps({"questions": []}))
    _expect(root, tmp_path, r'annotations.json: expected an object with a "annotations" list, got keys')
    ann.unlink()
    _expect(root, tmp_path, "questions.json has no v2_mscoco_train2014_annotations.json beside it")
    (root / "v2_OpenEnded_mscoco_train2014_questions.json").unlink()
    _expect(root, tmp_path, "no train.jsonl or train.json, nor VQA v2")
    tv = write_textvqa(tmp_path / "tv")
    f = tv / "TextVQA_0.5.1_val.json"
    f.write_text(f.read_text().replace('"image_id": "v0001a1b2c3d4"', '"image_id": 7', 1))
    _expect(tv, tmp_path, r"TextVQA_0.5.1_val.json record 2: 'image_id' must be a file name stem, got 7")
    (tv / "train_images" / "t0000a1b2c3d4.jpg").write_bytes(b"\xff\xd8 truncated")
    _expect(tv, tmp_path, r"TextVQA_0.5.1_train.json record 1: image .*t0000a1b2c3d4.jpg is unreadable")


def test_missing_coco_image_through_the_cli(tmp_path):
    root = write_vqa_v2(tmp_path / "vqa", {"train2014": 4})
    (root / "train2014" / "COCO_train2014_000000000102.jpg").unlink()
    proc = run(tmp_path / "runs", "data", [f"data.path={root}"])
    assert proc.returncode == 2
    line = error_line(proc)
    assert "v2_OpenEnded_mscoco_train2014_questions.json record 3: image" in line
    assert "train2014/COCO_train2014_000000000102.jpg is missing" in line
