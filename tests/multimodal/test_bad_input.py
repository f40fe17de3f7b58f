"""Bad input through the CLI: exit code 2 and one ``error:`` line naming the offending value."""

from __future__ import annotations

from .conftest import TINY, error_line, run, write_vqa


def test_json_with_wrong_types(tmp_path, colour_records):
    recs, images = colour_records
    recs[3] = {"image": "images/red.png", "question": ["what", "color"], "answers": ["red"]}
    folder = write_vqa(tmp_path / "vqa", recs, images)
    line = error_line(run(tmp_path / "runs", "data", [*TINY, f"data.path={folder}"]))
    assert "train.jsonl record 4" in line and "'question' must be a non-empty string, got list" in line


def test_missing_image(tmp_path, colour_records):
    recs, images = colour_records
    recs[5]["image"] = "images/nowhere.png"
    folder = write_vqa(tmp_path / "vqa", recs, images)
    line = error_line(run(tmp_path / "runs", "data", [*TINY, f"data.path={folder}"]))
    assert "train.jsonl record 6" in line and "nowhere.png is missing" in line and "data.bad_image=skip" in line


def test_truncated_image(tmp_path, colour_records):
    from PIL import Image

    recs, images = colour_records
    folder = write_vqa(tmp_path / "vqa", recs, images)
    Image.effect_noise((64, 64), 40).convert("RGB").save(folder / "images/blue.png")
    blob = (folder / "images/blue.png").read_bytes()
    (folder / "images/blue.png").write_bytes(blob[: len(blob) // 3])
    line = error_line(run(tmp_path / "runs", "data", [*TINY, f"data.path={folder}"]))
    assert "train.jsonl record 2" in line and "blue.png is unreadable" in line


def test_missing_folder_and_empty_set(tmp_path):
    line = error_line(run(tmp_path / "runs", "data", [*TINY, f"data.path={tmp_path / 'absent'}"]))
    assert "absent is not a folder" in line
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "train.jsonl").write_text("")
    line = error_line(run(tmp_path / "runs", "data", [*TINY, f"data.path={tmp_path / 'empty'}"]))
    assert "empty data set" in line


def test_patch_size_must_divide_image_size(tmp_path):
    line = error_line(run(tmp_path / "runs", "data", ["data.image_size=20", "model.patch_size=8"]))
    assert "data.image_size=20" in line and "model.patch_size=8" in line


def test_unknown_config_value(tmp_path):
    line = error_line(run(tmp_path / "runs", "data", ["model.size=huge"]))
    assert "model.size" in line
