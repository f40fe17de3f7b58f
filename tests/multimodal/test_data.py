"""The data stage's reader and generator, in process (no training)."""

from __future__ import annotations

import collections
import json

import pytest
from mlx_multimodal import data as D
from mlx_multimodal import records as R
from mlx_multimodal import sample as S

from mlx_core import DataError

from .conftest import stage_ctx, write_vqa


def test_generated_answers_depend_on_the_image(tmp_path):
    S.generate_shapes(tmp_path, n_train=300, n_val=10, seed=1, canvas=32)
    recs = R.read_records(tmp_path / "train.jsonl")
    assert len(recs) == 300
    assert all((tmp_path / r["image"]).is_file() for r in recs)
    by_question = collections.defaultdict(set)
    for r in recs:
        by_question[r["question"]].add(r["answers"][0])
    kinds = {q.split()[0] + " " + q.split()[1] for q in by_question}
    assert {"what color", "what shape", "how many", "is the"} <= kinds
    # the same question has different answers for different images: the text alone cannot answer it
    assert by_question["what color is the circle?"] >= {"red", "green", "blue"}
    assert len(by_question["how many objects are there?"]) >= 2


def test_generated_colour_answer_matches_the_pixels(tmp_path):
    from PIL import Image

    S.generate_shapes(tmp_path, n_train=60, n_val=1, seed=2, canvas=32)
    checked = 0
    for r in R.read_records(tmp_path / "train.jsonl"):
        if not r["question"].startswith("what color"):
            continue
        with Image.open(tmp_path / r["image"]) as im:
            pixels = {c for _, c in im.convert("RGB").getcolors(1 << 16)}
        assert S.COLORS[r["answers"][0]] in pixels
        checked += 1
    assert checked >= 5


def test_textvqa_json_with_data_field_and_image_id(tmp_path, colour_records):
    recs, images = colour_records
    write_vqa(tmp_path, [], images)
    (tmp_path / "train.jsonl").unlink()
    rows = [{"image_id": "red", "question": "what color?", "answers": ["red"] * 10},
            {"image_id": "blue", "question": "what color?", "answers": ["blue"] * 9 + ["red"]}]  # fmt: skip
    (tmp_path / "train.json").write_text(json.dumps({"dataset_name": "textvqa", "data": rows}))
    got = D.load_split(tmp_path, tmp_path / "train.json", 16, "error", collections.Counter(), {})
    assert [r[2] for r in got] == ["red", "blue"]
    assert got[1][3] == ["blue"] * 9 + ["red"]  # every given answer, for the VQA accuracy
    assert got[0][0].size == (20, 20)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (
            {"image": "a.png", "question": 42, "answers": ["red"]},
            "'question' must be a non-empty string, got number 42",
        ),
        ({"image": "a.png", "question": "q?", "answers": "red"}, "'answers' must be a non-empty list of strings"),
        ({"image": ["a.png"], "question": "q?", "answers": ["red"]}, "image field must be a file name string"),
        ({"question": "q?", "answers": ["red"]}, "no 'image', 'image_path' or 'image_id' field"),
        ({"image": "a.png", "question": "q?", "answers": [{"a": 1}]}, "'answers' must hold strings, found object"),
        ({"image": "a.png", "question": "q?"}, "needs an 'answers' list or an 'answer' string"),
    ],
)
def test_wrong_types_name_the_record_and_field(tmp_path, record, expected):
    good = {"image": "a.png", "question": "q?", "answers": ["red"]}
    write_vqa(tmp_path, [good, record])
    with pytest.raises(DataError, match="train.jsonl record 2") as err:
        R.read_records(tmp_path / "train.jsonl")
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_empty_and_broken_files(tmp_path):
    (tmp_path / "train.jsonl").write_text("\n")
    with pytest.raises(DataError, match="empty data set"):
        R.read_records(tmp_path / "train.jsonl")
    (tmp_path / "train.jsonl").write_text('{"image": "a.png", "question": "q?", "answers": ["x"]}\n{oops\n')
    with pytest.raises(DataError, match=r"train.jsonl:2: not valid JSON"):
        R.read_records(tmp_path / "train.jsonl")


def test_bad_images_error_or_skip_and_count(tmp_path, colour_records):
    recs, images = colour_records
    write_vqa(tmp_path, recs + [{"image": "images/gone.png", "question": "what color is it?", "answers": ["red"]}],
              images)  # fmt: skip
    with pytest.raises(DataError, match=r"record 9: image .*gone.png is missing"):
        D.load_split(tmp_path, tmp_path / "train.jsonl", 16, "error", collections.Counter(), {})
    counts = collections.Counter()
    got = D.load_split(tmp_path, tmp_path / "train.jsonl", 16, "skip", counts, {})
    assert len(got) == 8 and counts["skipped_bad_image"] == 1


def test_truncated_image_is_unreadable(tmp_path, colour_records):
    recs, images = colour_records
    write_vqa(tmp_path, recs, images)
    from PIL import Image

    Image.effect_noise((64, 64), 50).convert("RGB").save(tmp_path / "images/red.png")
    blob = (tmp_path / "images/red.png").read_bytes()
    (tmp_path / "images/red.png").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"record 1: image .*red.png is unreadable"):
        D.load_split(tmp_path, tmp_path / "train.jsonl", 16, "error", collections.Counter(), {})


def test_trained_wordpiece_knows_the_question_words(tmp_path):
    questions = ["what color is the circle?", "how many squares are there?", "is the red square on the left?"] * 5
    D.train_wordpiece(questions, 80, tmp_path / "tok")
    D.train_wordpiece(questions, 80, tmp_path / "again")
    assert (tmp_path / "tok" / "vocab.txt").read_text() == (tmp_path / "again" / "vocab.txt").read_text()
    tok = D.load_tokenizer(tmp_path / "tok")
    ids, truncated = D.tokenize(tok, ["what color is the square?", "how many circles are there? " * 4], 12)
    assert tuple(ids.shape) == (2, 12) and truncated == 1
    tokens = tok.convert_ids_to_tokens(ids[0].tolist())
    assert tokens[:3] == ["[CLS]", "what", "color"] and "[UNK]" not in tokens and tokens[-1] == "[PAD]"


def test_stage_counts_unknown_answers_truncation_and_skipped_images(tmp_path, colour_records):
    recs, images = colour_records
    recs.append({"image": "images/red.png", "question": "what color is this very very very long question about?",
                 "answers": ["crimson"]})  # fmt: skip
    recs.append({"image": "images/missing.png", "question": "what color is it?", "answers": ["red"]})
    folder = write_vqa(tmp_path / "vqa", recs, images)
    (tmp_path / "answers.txt").write_text("red\nblue\n")
    ctx = stage_ctx(tmp_path, path=str(folder), answers_file=str(tmp_path / "answers.txt"), max_length=10,
                    bad_image="skip", val_fraction=0.3)  # fmt: skip
    data = D.build_data(ctx)
    c = data.counts
    assert data.answers == ["<unk>", "red", "blue"]
    assert c["skipped_bad_image"] == 1
    assert c["unknown_answer_train"] + c["unknown_answer_val"] == 1  # "crimson" -> <unk>
    assert c["truncated_questions_train"] + c["truncated_questions_val"] == 1
    assert len(data.train) + len(data.val) == 9 and data.train.input_ids.shape[1] == 10
    assert tuple(data.train.images.shape[1:]) == (3, 16, 16)
    notes = " ".join(ctx.manifest.data["notes"])
    assert "mapped to <unk>" in notes and "truncated" in notes and "skipped" in notes

    ctx = stage_ctx(tmp_path / "again", path=str(folder), answers_file=str(tmp_path / "answers.txt"),
                    bad_image="skip", unknown_answer="drop", val_fraction=0.3)  # fmt: skip
    data = D.build_data(ctx)
    assert data.answers == ["red", "blue"] and len(data.train) + len(data.val) == 8
