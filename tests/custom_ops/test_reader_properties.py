"""Property-based tests of the image-folder reader: hostile files, folder names and name tables
either read as well-formed data or fail with one ``DataError`` line naming the culprit; drawn
images read back exactly; the sample writer is deterministic by seed. Images stay tiny (<= 16 px)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from mlx_custom_ops.data import EXTENSIONS, MEAN, STD, read_folder
from mlx_custom_ops.sample import write_sample
from PIL import Image

from mlx_core import DataError
from mlx_core.hostile import (
    assert_one_line_error,
    bmp_bomb,
    broken_png,
    encode_image,
    folder_bytes,
    fresh_folder,
    hostile_image_bytes,
    pillow_pixel_limit,
)

# Pillow warns about the damaged files these tests feed it on purpose
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:PIL.*"),
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
]


@pytest.fixture(autouse=True, scope="module")
def small_bomb_limit():
    """A mutated header can claim a huge size: a low limit makes Pillow refuse it at once instead
    of allocating hundreds of MB per example (the reader must turn that refusal into a DataError)."""
    with pillow_pixel_limit(100_000):
        yield


def png(rgb: np.ndarray) -> bytes:
    return encode_image(Image.fromarray(rgb), "PNG")


def make_tree(root: Path, layout: dict[str, dict[str, list[bytes]]]) -> None:
    """layout: split -> class folder -> file contents (written as 0000.png, 0001.png, ...)."""
    for split, classes in layout.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for c, files in classes.items():
            (root / split / c).mkdir(exist_ok=True)
            for i, data in enumerate(files):
                (root / split / c / f"{i:04d}.png").write_bytes(data)


def assert_well_formed(data, size: int) -> None:
    assert data.num_classes == len(data.classes) == len(data.names) >= 2
    for split in (data.train, data.valid):
        n = len(split)
        assert n >= 1 and split.images.shape == (n, size, size, 3) and split.images.dtype == np.uint8
        assert split.labels.dtype == np.int64 and len(split.files) == n
        assert split.labels.min() >= 0 and split.labels.max() < data.num_classes
        for f, label in zip(split.files, split.labels, strict=True):
            assert Path(f).parts[1] == data.classes[label], (f, label)  # each label is its folder's class


# --- hostile image files ----------------------------------------------------------------------------
TREE = {"train": {"1": [], "2": []}, "valid": {"1": [], "2": []}}


@settings(max_examples=250)
@given(
    content=hostile_image_bytes(),
    ext=st.sampled_from(sorted(EXTENSIONS) + [".JPG", ".PNG"]),
    split=st.sampled_from(["train", "valid"]),
    cls=st.sampled_from(["1", "2"]),
    size=st.integers(4, 12),
)
@example(content=(bmp_bomb(), False), ext=".jpg", split="train", cls="1", size=8)
@example(content=(broken_png(b"IHDR"), False), ext=".png", split="valid", cls="2", size=8)
@example(content=(broken_png(b"IDAT"), False), ext=".png", split="train", cls="2", size=8)
def test_hostile_image_file_is_read_or_named_in_one_line(content, ext, split, cls, size):
    data, intact = content
    with fresh_folder() as root:
        layout = {s: {c: [png(np.full((5, 7, 3), 40 * int(c), np.uint8))] for c in cs} for s, cs in TREE.items()}
        make_tree(root, layout)
        bad = root / split / cls / f"zz_hostile{ext}"
        bad.write_bytes(data)
        try:
            out = read_folder(root, size)
        except Exception as err:  # noqa: BLE001 - the property is about which exceptions escape
            assert not intact, f"an intact image was refused: {err}"
            assert_one_line_error(err, bad, types=DataError)
            return
        assert_well_formed(out, size)
        files = getattr(out, split).files
        assert f"{split}/{cls}/zz_hostile{ext}" in files and len(files) == 2 + 1  # read, under its class
        assert len(out.train) + len(out.valid) == 5


@settings(max_examples=60)
@given(
    content=st.binary(max_size=200) | hostile_image_bytes().map(lambda c: c[0]),
    name=st.sampled_from(["notes.txt", "README", "image.gif", "image.jpg.bak", "thumbs.db", "x.webp"]),
)
def test_files_without_an_image_extension_are_ignored(content, name):
    with fresh_folder() as root:
        make_tree(root, {s: {c: [png(np.zeros((3, 3, 3), np.uint8))] for c in cs} for s, cs in TREE.items()})
        (root / "train" / "1" / name).write_bytes(content)
        out = read_folder(root, 4)
        assert out.train.files == ["train/1/0000.png", "train/2/0000.png"]


# --- round trips -------------------------------------------------------------------------------------
@settings(max_examples=60)
@given(data=st.data(), size=st.integers(1, 16), n_classes=st.integers(2, 4), gray=st.booleans())
def test_drawn_images_read_back_exactly(data, size, n_classes, gray):
    """PNGs already at image_size: pixels, labels and file order come back unchanged."""
    shape = (size, size) if gray else (size, size, 3)
    counts = {s: [data.draw(st.integers(1, 3)) for _ in range(n_classes)] for s in ("train", "valid")}
    arrays = {s: [[data.draw(hnp.arrays(np.uint8, shape)) for _ in range(k)] for k in ks] for s, ks in counts.items()}
    with fresh_folder() as root:
        layout = {s: {str(c + 1): [encode_image(Image.fromarray(a), "PNG") for a in per] for c, per in enumerate(cls)}
                  for s, cls in arrays.items()}  # fmt: skip
        make_tree(root, layout)
        out = read_folder(root, size)
        assert_well_formed(out, size)
        assert out.classes == [str(c + 1) for c in range(n_classes)]
        for s in ("train", "valid"):
            split = getattr(out, s)
            want = [a if not gray else np.repeat(a[..., None], 3, axis=2) for per in arrays[s] for a in per]
            assert np.array_equal(split.images, np.stack(want))
            assert split.labels.tolist() == [c for c, per in enumerate(arrays[s]) for _ in per]
            x = split.normalized()
            assert x.shape == (len(want), 3, size, size) and x.dtype == np.float32
            back = (x.transpose(0, 2, 3, 1) * STD + MEAN) * 255
            assert np.abs(back - split.images).max() < 1e-3


@settings(max_examples=25)
@given(seed=st.integers(0, 2**63), classes=st.integers(2, 4), per_class=st.integers(1, 3), size=st.integers(4, 16))
def test_written_sample_reads_back_in_the_flowers_layout(seed, classes, per_class, size):
    with fresh_folder() as root:
        write_sample(root, classes, per_class, 1, size, seed)
        out = read_folder(root, size)
        assert_well_formed(out, size)
        assert out.classes == [str(c + 1) for c in range(classes)]
        assert all(n.startswith("stripes-") and n.endswith("deg") for n in out.names)
        assert np.bincount(out.train.labels).tolist() == [per_class] * classes
        assert np.bincount(out.valid.labels).tolist() == [1] * classes
        for f, image in zip(out.train.files, out.train.images, strict=True):  # each row is its own file
            with Image.open(root / f) as im:
                assert np.array_equal(np.asarray(im.convert("RGB")), image)


@settings(max_examples=25)
@given(seed=st.integers(0, 2**63), other=st.integers(0, 2**63), classes=st.integers(2, 3), size=st.integers(4, 16))
def test_sample_writer_is_deterministic_by_seed(seed, other, classes, size):
    with fresh_folder() as d:
        a = folder_bytes(write_sample(d / "a", classes, 2, 1, size, seed))
        b = folder_bytes(write_sample(d / "b", classes, 2, 1, size, seed))
        assert a == b  # same seed: the same bytes, file for file
        assert len(a) == classes * 3 + 1
        if other != seed:
            c = folder_bytes(write_sample(d / "c", classes, 2, 1, size, other))
            assert a.keys() == c.keys() and any(a[k] != c[k] for k in a if k.endswith(".jpg"))


# --- folder names, name tables and layouts -------------------------------------------------------------
folder_name = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1, max_size=8)
folder_name = folder_name.filter(lambda s: s not in (".", "..") and len(s.encode()) < 200)


@settings(max_examples=100)
@given(
    names=st.lists(folder_name | st.integers(0, 300).map(str), min_size=2, max_size=5, unique=True),
    hidden=st.lists(folder_name.map(lambda s: "." + s), max_size=2, unique=True),
)
@example(names=["²", "3"], hidden=[])
@example(names=["10", "2", "1"], hidden=[".cache"])
def test_any_class_folder_names_are_read_and_sorted(names, hidden):
    """Unicode, digit-like and hidden folder names: hidden ones are skipped, numbers sort numerically."""
    assume(len({n for n in names if not n.startswith(".")}) >= 2)
    with fresh_folder() as root:
        img = png(np.zeros((2, 2, 3), np.uint8))
        make_tree(root, {s: {n: [img] for n in names + hidden} for s in ("train", "valid")})
        visible = [n for n in names if not n.startswith(".")]
        out = read_folder(root, 2)
        assert_well_formed(out, 2)
        assert sorted(out.classes) == sorted(visible) and out.names == out.classes
        numeric = [n for n in visible if n.isdecimal()]
        assert [c for c in out.classes if c in numeric] == sorted(numeric, key=lambda n: (int(n), n))
        others = [c for c in out.classes if c not in numeric]
        assert others == sorted(others)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150)
@given(
    table=st.one_of(
        json_values.map(json.dumps),
        st.dictionaries(st.sampled_from(["1", "2", "3"]), json_values, max_size=3).map(json.dumps),
        st.text(max_size=60),
    ).map(lambda t: t.encode("utf-8"))
    | st.binary(max_size=60)
)
@example(table=b"[1, 2]")
@example(table=b"null")
@example(table=b"[" * 100_000)
@example(table=b'{"1": "pink primrose", "2": ["a", 1]}')
def test_cat_to_name_table_gives_names_or_one_line_data_error(table):
    with fresh_folder() as root:
        make_tree(root, {s: {c: [png(np.zeros((2, 2, 3), np.uint8))] for c in cs} for s, cs in TREE.items()})
        mapping = root / "cat_to_name.json"
        mapping.write_bytes(table)
        try:
            parsed = json.loads(table.decode("utf-8"))
        except (ValueError, RecursionError):
            parsed = None
            is_table = False
        else:
            is_table = isinstance(parsed, dict)
        try:
            out = read_folder(root, 2)
        except Exception as err:  # noqa: BLE001
            assert not is_table, f"a JSON object was refused: {err}"
            assert_one_line_error(err, mapping, types=DataError)
            return
        assert is_table, f"{table[:40]!r} (not a JSON object) was accepted as the name table"
        assert out.names == [str(parsed.get(c, c)) for c in out.classes]


@st.composite
def layouts(draw):
    """split -> class -> number of images, with missing splits, empty and extra classes."""
    names = st.sampled_from(["1", "2", "10", "a", "b"])
    out = {}
    for split in ("train", "valid"):
        if draw(st.integers(0, 5)):  # now and then a split folder is missing altogether
            out[split] = draw(st.dictionaries(names, st.integers(0, 2), max_size=4))
    return out


@settings(max_examples=120)
@given(layout=layouts(), size=st.integers(2, 6))
def test_any_folder_layout_reads_or_names_the_problem(layout, size):
    """Refused exactly when the Flowers layout is broken, with the folder or class named; else counted right."""
    img = png(np.zeros((3, 3, 3), np.uint8))
    train, valid = layout.get("train"), layout.get("valid")
    if train is None or valid is None:
        problem = ["has no train/ folder" if train is None else "has no valid/ folder"]
    elif len(train) < 2:
        problem = ["train", f"{len(train)} class folder(s)"]
    elif set(valid) - set(train):
        problem = [repr(sorted(set(valid) - set(train)))]
    elif not sum(train.values()):
        problem = ["train holds no images"]
    elif not sum(valid.values()):
        problem = ["valid holds no images"]
    else:
        problem = None
    with fresh_folder() as root:
        make_tree(root, {s: {c: [img] * k for c, k in cs.items()} for s, cs in layout.items()})
        if problem is not None:
            with pytest.raises(DataError) as info:
                read_folder(root, size)
            assert_one_line_error(info.value, *problem, types=DataError)
            return
        out = read_folder(root, size)
        assert_well_formed(out, size)
        assert sorted(out.classes) == sorted(train)
        assert len(out.train) == sum(train.values()) and len(out.valid) == sum(valid.values())
