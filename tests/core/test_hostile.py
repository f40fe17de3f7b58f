"""The hostile-input kit (mlx_core.hostile) judges and builds what it claims to."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from mlx_core import ConfigError, DataError
from mlx_core.hostile import (
    BYTE_DAMAGE,
    HOSTILE_TEXT,
    JSON_VALUES,
    TEXT,
    assert_one_line_error,
    bmp_bomb,
    broken_png,
    damaged_bytes,
    folder_bytes,
    fresh_folder,
    hostile_image_bytes,
    intact_image_bytes,
    offline_hf_caches,
    pillow_pixel_limit,
)
from mlx_core.testing import imported_packages

HF_VARS = ("HF_HOME", "HF_DATASETS_CACHE", "HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_DISABLE_PROGRESS_BARS")


def _is_utf8(blob: bytes) -> bool:
    try:
        blob.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


# --- assert_one_line_error ---------------------------------------------------------------------
def test_the_judge_accepts_a_one_line_user_error_and_returns_its_message(tmp_path):
    err = DataError(f"{tmp_path / 'a.csv'}: record 3 has no 'text'")
    assert assert_one_line_error(err, tmp_path / "a.csv", "record 3") == str(err)
    assert assert_one_line_error(ConfigError("seed -1: expected >= 0"), -1)


@pytest.mark.parametrize(
    "err",
    [
        KeyError("image_id"),  # a raw exception escaped the reader
        ValueError("bad value"),
        DataError("two\nlines"),
        DataError("one line and a newline\n"),
        DataError("carriage\rreturn"),
        DataError("line\u2028separator"),
        DataError("   "),
        DataError("a lone surrogate \ud800 copied from the data"),
    ],
    ids=repr,
)
def test_the_judge_rejects_raw_exceptions_and_messages_that_are_not_one_printable_line(err):
    with pytest.raises(AssertionError):
        assert_one_line_error(err)


def test_the_judge_rejects_a_message_that_does_not_name_the_culprit():
    with pytest.raises(AssertionError, match="b.csv not named"):
        assert_one_line_error(DataError("a.csv is empty"), "a.csv", Path("b.csv"))


def test_the_judge_accepts_only_the_types_it_is_given():
    assert_one_line_error(DataError("x"), types=DataError)
    with pytest.raises(AssertionError, match="ConfigError escaped"):
        assert_one_line_error(ConfigError("x"), types=DataError)
    assert_one_line_error(KeyError("k"), types=(KeyError,))


# --- folders and environments ------------------------------------------------------------------
def test_fresh_folder_is_new_empty_and_removed_after():
    with fresh_folder() as a, fresh_folder() as b:
        assert a != b and a.is_dir() and not any(a.iterdir())
        (a / "sub").mkdir()
        (a / "sub" / "x.bin").write_bytes(b"\x00\xff")
        (a / "y.txt").write_text("y")
        assert folder_bytes(a) == {"sub/x.bin": b"\x00\xff", "y.txt": b"y"}  # files only, relative paths
    assert not a.exists() and not b.exists()


def test_offline_hf_caches_sets_the_environment_and_restores_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", "/the/users/own")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    before = {k: os.environ.get(k) for k in HF_VARS}
    with pytest.raises(RuntimeError), offline_hf_caches(tmp_path / "hf") as home:
        assert home == tmp_path / "hf"
        assert os.environ["HF_HOME"] == str(home)
        assert os.environ["HF_DATASETS_CACHE"] == str(home / "datasets")
        assert os.environ["HF_DATASETS_OFFLINE"] == os.environ["HF_HUB_OFFLINE"] == "1"
        assert os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] == "1"
        raise RuntimeError("a failing test inside")
    assert {k: os.environ.get(k) for k in HF_VARS} == before
    assert "HF_HUB_OFFLINE" not in os.environ


# --- text strategies ---------------------------------------------------------------------------
def test_hostile_text_and_json_values_can_hold_a_lone_surrogate():
    assert _has_surrogate(find(HOSTILE_TEXT, _has_surrogate))
    key = find(JSON_VALUES, lambda v: isinstance(v, dict) and any(map(_has_surrogate, v)))
    assert any(map(_has_surrogate, key))  # in JSON object keys too


@settings(max_examples=100)
@given(text=TEXT)
def test_text_is_non_blank_valid_unicode(text):
    assert text.strip()
    text.encode("utf-8")


# --- images (numpy and Pillow are not core dependencies) -----------------------------------------
def test_broken_png_is_unreadable_and_bmp_bomb_is_refused_under_the_pixel_limit():
    pytest.importorskip("numpy")
    Image = pytest.importorskip("PIL.Image")
    for chunk in (b"IHDR", b"IDAT"):
        with pytest.raises((ValueError, SyntaxError, OSError)):
            with Image.open(io.BytesIO(broken_png(chunk))) as im:
                im.load()
    limit = Image.MAX_IMAGE_PIXELS
    with Image.open(io.BytesIO(bmp_bomb())) as im:  # Pillow's own limit lets the header through
        assert im.size == (4000, 4000)
    with pillow_pixel_limit(100_000), pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bmp_bomb()))
    assert Image.MAX_IMAGE_PIXELS == limit


def test_intact_image_bytes_decode_to_their_size_and_hostile_ones_say_when_intact():
    pytest.importorskip("numpy")
    Image = pytest.importorskip("PIL.Image")

    @settings(max_examples=30)
    @given(image=intact_image_bytes(), hostile=hostile_image_bytes())
    def check(image, hostile):
        data, size = image
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            assert im.size == size
        data, intact = hostile
        if intact:
            with Image.open(io.BytesIO(data)) as im:
                im.load()

    check()


# --- nothing imports the kit but tests -----------------------------------------------------------
def test_importing_mlx_core_or_listing_plugins_does_not_load_the_kit():
    code = "import sys, mlx_core, mlx_core.cli; print(sorted(m for m in sys.modules if 'hostile' in m or m == 'hypothesis'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert "hypothesis" not in imported_packages("plugins", "list")


@given(
    blob=st.binary(max_size=40) | st.text(max_size=20).map(lambda t: t.encode("utf-8")),
    how=st.sampled_from(BYTE_DAMAGE),
    data=st.data(),
)
def test_damaged_bytes_spoils_the_way_it_says(blob, how, data):
    out = data.draw(damaged_bytes(blob, how))
    if how == "truncate":
        assert blob.startswith(out)
    elif how == "insert bytes":
        assert len(out) > len(blob)
    elif how == "invalid utf-8" and _is_utf8(blob):  # into bytes that are no text, b"\xc3" + b"\x80" is valid
        with pytest.raises(UnicodeDecodeError):
            out.decode("utf-8")


def test_damaged_bytes_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="expected one of"):
        find(damaged_bytes(b"abc", "shred"), lambda _: True)
