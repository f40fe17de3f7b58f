"""Hostile-input kit: strategies, damaged files and a judge of user errors for a reader's property tests.

A plugin's readers (``mlx_data`` and what it calls) must turn any input into well-formed data or
one ``DataError``/``ConfigError`` line naming the culprit. This module holds what such tests share:

    from hypothesis import given
    from mlx_core.hostile import HOSTILE_TEXT, assert_one_line_error, fresh_folder

    @given(text=HOSTILE_TEXT)
    def test_any_text_reads_or_is_named(text):
        with fresh_folder() as d:
            (d / "a.txt").write_bytes(text.encode("utf-8", "surrogatepass"))
            try:
                read(d / "a.txt")
            except Exception as err:  # noqa: BLE001 - judged: which exceptions escape
                assert_one_line_error(err, d / "a.txt")

It needs hypothesis (``pip install "mlx-core[test]"``); the image helpers also need numpy and
Pillow, imported when they are called. Only tests import it: ``import mlx_core`` and
``mlx plugins list`` never do.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError('mlx_core.hostile needs hypothesis: pip install "mlx-core[test]"') from exc

from . import testing as _testing

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

__all__ = [
    "AWKWARD", "ENCODINGS", "HOSTILE_TEXT", "JSON_VALUES", "SCALAR", "TEXT", "assert_one_line_error", "bmp_bomb",
    "broken_png", "encode_image", "folder_bytes", "fresh_folder", "hostile_image_bytes", "intact_image_bytes",
    "offline_hf_caches", "pillow_pixel_limit", "rgb_arrays", "to_mode",
]  # fmt: skip


# --- judging what escapes --------------------------------------------------------------------------
# one judge of user errors for the project: mlx_core.testing holds it, this kit re-exports it
assert_one_line_error = _testing.assert_one_line_error


# --- folders and environments ----------------------------------------------------------------------
@contextlib.contextmanager
def fresh_folder(prefix: str = "mlx-hostile-") -> Iterator[Path]:
    """A new empty temporary folder, removed afterwards: one per hypothesis example (pytest's
    ``tmp_path`` is shared by all the examples of a test)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as d:
        yield Path(d)


def folder_bytes(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` as relative path -> bytes: compare two generated folders file for file."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def offline_hf_caches(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Point the Hugging Face caches at ``folder``, offline and without progress bars, so a test
    writes nothing under the home directory and reaches no network; the environment is restored after."""
    home = Path(folder)
    env = {
        "HF_HOME": str(home),
        "HF_DATASETS_CACHE": str(home / "datasets"),
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    }
    before = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield home
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- awkward text and JSON -------------------------------------------------------------------------
#: characters that trip up line-based and Arrow-based readers: line separators JSON leaves raw,
#: NUL, bidi overrides, a BOM, control characters, astral-plane emoji
AWKWARD = "\u2028\u2029\x85\x00\u202e\u200f\u061c\ufeff\x1c\x0b\x0c\t\r\n é中🙂"
#: one character: any Unicode scalar value (no lone surrogates), often an awkward one
SCALAR = st.characters(codec="utf-8") | st.sampled_from(AWKWARD)
#: non-blank text a valid file can hold (1-16 characters)
TEXT = st.text(SCALAR, min_size=1, max_size=16).filter(str.strip)
#: text a valid file can hold, or with a lone surrogate (valid as a JSON "\udXXX" escape, not Unicode text)
HOSTILE_TEXT = st.text(SCALAR, max_size=12) | st.builds(
    lambda a, s, b: a + s + b,
    st.text(SCALAR, max_size=4),
    st.characters(categories=["Cs"]),
    st.text(SCALAR, max_size=4),
)
#: any JSON value (NaN and infinities included), its strings and keys drawn from HOSTILE_TEXT
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | HOSTILE_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOSTILE_TEXT, inner, max_size=3),
    max_leaves=6,
)
#: lines a JSON Lines reader meets in the wild. The first three are blank in JSON's sense (a
#: reader should skip them); then other Unicode blanks, JSON that is no record, broken JSON,
#: nesting 50,000 deep (RecursionError), a 5,000-digit integer (ValueError) and a NUL byte
HOSTILE_JSON_LINES: tuple[bytes, ...] = (
    b"", b"   ", b"\t\r", b"\x0c", "\u3000".encode(), "\u2028".encode(), b"null", b"[]", b"{}", b"{oops",
    b"[" * 50_000, b'{"n": ' + b"1" * 5000 + b"}", b"\x00",
)  # fmt: skip
#: how many of HOSTILE_JSON_LINES are blank lines a JSON Lines reader must accept
BLANK_JSON_LINES = 3
#: byte sequences that are never valid UTF-8: a stray 0xFF, a cut-off 2-byte sequence, an encoded
#: surrogate, an overlong "/"
INVALID_UTF8: tuple[bytes, ...] = (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf")
#: the ways ``damaged_bytes`` spoils a file
BYTE_DAMAGE = ("truncate", "insert bytes", "invalid utf-8", "random")


@st.composite
def damaged_bytes(draw: st.DrawFn, blob: bytes, how: str) -> bytes:
    """``blob`` spoiled one way (one of ``BYTE_DAMAGE``): cut at any offset, a few random bytes or an
    invalid UTF-8 sequence inserted anywhere, or replaced by up to 64 random bytes."""
    if how == "random":
        return draw(st.binary(max_size=64))
    at = draw(st.integers(0, len(blob)))
    if how == "truncate":
        return blob[:at]
    if how == "insert bytes":
        return blob[:at] + draw(st.binary(min_size=1, max_size=8)) + blob[at:]
    if how == "invalid utf-8":
        return blob[:at] + draw(st.sampled_from(INVALID_UTF8)) + blob[at:]
    raise ValueError(f"how={how!r}; expected one of {BYTE_DAMAGE}")


# --- images (numpy and Pillow, imported when called) -----------------------------------------------
#: (format, mode) pairs Pillow writes; an image reader must read every one of them when intact
ENCODINGS = [("PNG", m) for m in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")]
ENCODINGS += [("JPEG", m) for m in ("L", "RGB", "CMYK")] + [("BMP", m) for m in ("1", "L", "P", "RGB")]
ENCODINGS += [("GIF", "P"), ("TIFF", "RGB"), ("TIFF", "I;16")]


@contextlib.contextmanager
def pillow_pixel_limit(pixels: int = 100_000) -> Iterator[None]:
    """Lower Pillow's decompression-bomb limit while inside: a mutated header can claim a huge size,
    and a low limit makes Pillow refuse it at once instead of allocating hundreds of MB per example."""
    from PIL import Image

    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def to_mode(rgb: np.ndarray, mode: str) -> Image.Image:
    """An (h, w, 3) uint8 array as a Pillow image in ``mode`` ("I;16" scales gray to 16 bits)."""
    import numpy as np
    from PIL import Image

    im = Image.fromarray(rgb)
    if mode == "I;16":
        return Image.fromarray(np.asarray(im.convert("L")).astype(np.uint16) * 257)
    return im.convert(mode)


def encode_image(im: Image.Image, fmt: str) -> bytes:
    """The bytes of ``im`` saved in format ``fmt`` ("PNG", "JPEG", ...)."""
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def bmp_bomb() -> bytes:
    """A valid BMP whose header claims 4000 x 4000 pixels: Pillow's decompression-bomb refusal
    (under ``pillow_pixel_limit``)."""
    from PIL import Image

    data = bytearray(encode_image(Image.new("RGB", (4, 4)), "BMP"))
    data[18:26] = struct.pack("<ii", 4000, 4000)
    return bytes(data)


def broken_png(chunk: bytes) -> bytes:
    """A valid PNG with the length of ``chunk`` zeroed: Pillow raises ValueError (IHDR) or SyntaxError (IDAT)."""
    from PIL import Image

    data = bytearray(encode_image(Image.new("RGB", (11, 9)), "PNG"))
    data[data.index(chunk) - 1] = 0
    return bytes(data)


def rgb_arrays(max_side: int = 16, min_side: int = 1) -> st.SearchStrategy[Any]:
    """(h, w, 3) uint8 arrays with sides from ``min_side`` to ``max_side``."""
    import numpy as np
    from hypothesis.extra import numpy as hnp

    side = st.integers(min_side, max_side)
    return st.tuples(side, side).flatmap(lambda hw: hnp.arrays(np.uint8, (*hw, 3)))


@st.composite
def intact_image_bytes(draw: st.DrawFn) -> tuple[bytes, tuple[int, int]]:
    """(bytes, (w, h)) of a valid image of up to 16 x 16 pixels in one of ``ENCODINGS``."""
    fmt, mode = draw(st.sampled_from(ENCODINGS))
    rgb = draw(rgb_arrays())
    return encode_image(to_mode(rgb, mode), fmt), (rgb.shape[1], rgb.shape[0])


@st.composite
def hostile_image_bytes(draw: st.DrawFn) -> tuple[bytes, bool]:
    """(bytes, intact): random bytes, an empty file, a valid image cut short or with bytes overwritten,
    or an intact valid image (``intact`` True: a reader must then read it)."""
    kind = draw(st.sampled_from(["random", "empty", "truncated", "mutated", "intact"]))
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=300)), False
    if kind == "empty":
        return b"", False
    data, _ = draw(intact_image_bytes())
    if kind == "truncated":
        return data[: draw(st.integers(0, len(data) - 1))], False
    if kind == "mutated":
        buf = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            buf[draw(st.integers(0, len(buf) - 1))] = draw(st.integers(0, 255))
        return bytes(buf), False
    return data, True
