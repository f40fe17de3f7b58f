"""Property-based tests of the VOC reader: hostile files either read as well-formed data or fail
with one ``DataError`` line naming the file; written samples read back exactly; the generator is
deterministic by seed. Images stay tiny (1-16 px) so each example costs milliseconds."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from mlx_segmentation.config import SegmentationConfig
from mlx_segmentation.data import (
    IGNORE,
    MEAN,
    STD,
    VOC_CLASSES,
    VOCSegmentation,
    build_data,
    index_split,
    load_image,
    load_mask,
    read_split,
    voc_palette,
)
from mlx_segmentation.sample import SAMPLE_CLASSES, generate_sample, render_sample
from PIL import Image

from mlx_core import ConfigError, DataError
from mlx_core.hostile import (
    assert_one_line_error,
    bmp_bomb,
    broken_png,
    encode_image,
    folder_bytes,
    fresh_folder,
    hostile_image_bytes,
    intact_image_bytes,
    pillow_pixel_limit,
    rgb_arrays,
    to_mode,
)
from mlx_core.testing import stage_context

# Pillow warns about the damaged files these tests feed it on purpose
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:PIL.*"),
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
]
SAMPLE_IDS = {0, IGNORE} | {VOC_CLASSES.index(c) for c in SAMPLE_CLASSES}


@pytest.fixture(autouse=True, scope="module")
def small_bomb_limit():
    """A mutated header can claim a huge size: a low limit makes Pillow refuse it at once instead
    of allocating hundreds of MB per example (the reader must turn that refusal into a DataError)."""
    with pillow_pixel_limit(100_000):
        yield


def png_mask(ids: np.ndarray, mode: str = "P") -> bytes:
    im = Image.fromarray(ids, mode="L")
    if mode == "P":
        im = im.convert("P")  # keeps the values as palette indices
        im.putpalette(voc_palette())
    return encode_image(im, "PNG")


# --- load_image / load_mask on hostile files -----------------------------------------------------
@settings(max_examples=250)
@given(content=hostile_image_bytes(), suffix=st.sampled_from([".jpg", ".png"]))
@example(content=(bmp_bomb(), False), suffix=".jpg")
@example(content=(broken_png(b"IHDR"), False), suffix=".png")
@example(content=(broken_png(b"IDAT"), False), suffix=".jpg")
def test_load_image_returns_rgb_or_one_line_data_error(content, suffix):
    data, intact = content
    with fresh_folder() as d:
        path = d / f"img{suffix}"
        path.write_bytes(data)
        try:
            im = load_image(path)
        except Exception as err:  # noqa: BLE001 - the property is about which exceptions escape
            assert not intact, f"an intact image was refused: {err}"
            msg = assert_one_line_error(err, path)
            assert "not a readable image" in msg
            return
        assert im.mode == "RGB" and im.width >= 1 and im.height >= 1
        assert np.asarray(im).shape == (im.height, im.width, 3)


@settings(max_examples=60)
@given(image=intact_image_bytes())
def test_intact_images_keep_their_size(image):
    data, size = image
    with fresh_folder() as d:
        (d / "a.jpg").write_bytes(data)
        assert load_image(d / "a.jpg").size == size


@settings(max_examples=250)
@given(content=hostile_image_bytes(), num_classes=st.integers(2, 256))
@example(content=(bmp_bomb(), False), num_classes=21)
@example(content=(broken_png(b"IHDR"), False), num_classes=21)
@example(content=(broken_png(b"IDAT"), False), num_classes=21)
def test_load_mask_returns_valid_ids_or_one_line_data_error(content, num_classes):
    data, _ = content
    with fresh_folder() as d:
        path = d / "mask.png"
        path.write_bytes(data)
        try:
            arr = load_mask(path, num_classes)
        except Exception as err:  # noqa: BLE001
            assert_one_line_error(err, path)
            return
        assert arr.dtype == np.uint8 and arr.ndim == 2 and arr.size > 0
        ids = np.unique(arr)
        assert np.all((ids < num_classes) | (ids == IGNORE)), ids


@st.composite
def id_masks(draw):
    """A class-id mask: mostly valid ids, sometimes stray ones (>= num_classes, != 255)."""
    num_classes = draw(st.integers(2, 40))
    h, w = draw(st.integers(1, 16)), draw(st.integers(1, 16))
    ids = st.one_of(st.integers(0, num_classes - 1), st.just(IGNORE), st.integers(0, 255))
    return draw(hnp.arrays(np.uint8, (h, w), elements=ids)), num_classes


@settings(max_examples=150)
@given(mask=id_masks(), mode=st.sampled_from(["P", "L"]))
def test_mask_ids_round_trip_or_the_smallest_stray_id_is_named(mask, mode):
    arr, num_classes = mask
    stray = sorted({int(v) for v in np.unique(arr) if v >= num_classes and v != IGNORE})
    with fresh_folder() as d:
        path = d / "m.png"
        path.write_bytes(png_mask(arr, mode))
        if not stray:
            out = load_mask(path, num_classes)
            assert out.dtype == np.uint8 and np.array_equal(out, arr)
            with Image.open(path) as m:  # the palette written with the ids is kept beside them
                assert m.mode == mode and (mode == "L" or m.getpalette() == voc_palette())
            return
        with pytest.raises(DataError) as info:
            load_mask(path, num_classes)
        assert_one_line_error(info.value, path, f"class id {stray[0]}", f"num_classes is {num_classes}")


@settings(max_examples=40)
@given(
    rgb=rgb_arrays(8), mode=st.sampled_from(["RGB", "RGBA", "LA", "I;16", "1"]), fmt=st.sampled_from(["PNG", "TIFF"])
)
def test_masks_that_are_not_palette_or_grayscale_are_refused_by_mode(rgb, mode, fmt):
    """A colour-coded (RGB) or 16-bit mask must not be misread as class ids."""
    if fmt == "TIFF" and mode == "LA":
        mode = "RGBA"
    with fresh_folder() as d:
        path = d / "m.png"
        path.write_bytes(encode_image(to_mode(rgb, mode), fmt))
        with pytest.raises(DataError) as info:
            load_mask(path, 21)
        with Image.open(path) as m:
            stored = m.mode
        assert_one_line_error(info.value, path, f"mode {stored}")


# --- split files ----------------------------------------------------------------------------------
no_space = st.text(min_size=1, max_size=12).filter(lambda s: not any(c.isspace() for c in s))
# an image id is a file name: read_split refuses folders ("/", "\\") and "." / ".."
file_id = no_space.filter(lambda s: "/" not in s and "\\" not in s and s not in (".", ".."))
blank = st.sampled_from(["", " ", "\t", "  \t "])


@settings(max_examples=150)
@given(
    lines=st.lists(
        st.tuples(
            blank, file_id, st.sampled_from(["", " 1", " -1", "\t0", "  extra words"]), st.lists(blank, max_size=2)
        ),
        min_size=1,
        max_size=8,
    ),
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
    last_eol=st.booleans(),
)
def test_split_ids_round_trip_through_any_line_layout(lines, eol, last_eol):
    """Leading blanks, VOC's extra columns, blank lines, any line ending: the ids come back in order."""
    text = ""
    for lead, sid, tail, blanks in lines:
        text += f"{lead}{sid}{tail}{eol}" + "".join(b + eol for b in blanks)
    if not last_eol:
        text = text[: -len(eol)]
    with fresh_folder() as root:
        (root / "ImageSets/Segmentation").mkdir(parents=True)
        (root / "ImageSets/Segmentation/train.txt").write_bytes(text.encode("utf-8"))
        assert read_split(root, "train") == [sid for _, sid, _, _ in lines]


@settings(max_examples=150)
@given(content=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8"))))
@example(content=b"\xff\xfe\x80abc\n")
@example(content=b" \n\t\r\n")
@example(content=b"")
def test_split_file_of_arbitrary_bytes_gives_ids_or_one_line_data_error(content):
    with fresh_folder() as root:
        (root / "ImageSets/Segmentation").mkdir(parents=True)
        path = root / "ImageSets/Segmentation/val.txt"
        path.write_bytes(content)
        try:
            ids = read_split(root, "val")
        except Exception as err:  # noqa: BLE001
            assert_one_line_error(err, path)
            return
        assert ids and all(isinstance(s, str) and s and not any(c.isspace() for c in s) for s in ids)
        assert not any("/" in s or "\\" in s or s in (".", "..") for s in ids), ids  # never a path


@settings(max_examples=60)
@given(
    sid=st.builds(
        lambda a, sep, b: a + sep + b, st.text(max_size=5), st.sampled_from(["/", "\\", "/../"]), st.text(max_size=5)
    ).filter(lambda s: not any(c.isspace() for c in s))
    | st.sampled_from([".", "..", "../x", "/etc/passwd"])
)
def test_split_id_that_is_a_path_is_refused_by_name(sid):
    with fresh_folder() as root:
        (root / "ImageSets/Segmentation").mkdir(parents=True)
        path = root / "ImageSets/Segmentation/train.txt"
        path.write_text(f"ok_1\n{sid} 1\n", encoding="utf-8")
        with pytest.raises(DataError) as info:
            read_split(root, "train")
        assert_one_line_error(info.value, path, repr(sid))


safe_id = st.text(st.characters(whitelist_categories=("L", "N"), max_codepoint=0x2FFF), min_size=1, max_size=10)


@settings(max_examples=80)
@given(
    entries=st.lists(
        st.tuples(safe_id | file_id, st.booleans(), st.booleans()),
        min_size=1,
        max_size=5,
    )
)
def test_index_split_names_the_first_id_without_image_or_mask(entries):
    """Ids (any unicode) whose image or mask is missing: the first one is named, with the missing file."""
    with fresh_folder() as root:
        for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
            (root / sub).mkdir(parents=True)
        mask = png_mask(np.zeros((4, 4), np.uint8))
        for sid, has_image, has_mask in entries:
            with contextlib.suppress(OSError, ValueError):  # ids no file system can name stay missing
                if has_image:
                    (root / "JPEGImages" / f"{sid}.jpg").write_bytes(encode_image(Image.new("RGB", (4, 4)), "JPEG"))
                if has_mask:
                    (root / "SegmentationClass" / f"{sid}.png").write_bytes(mask)
        (root / "ImageSets/Segmentation/train.txt").write_text("".join(f"{sid}\n" for sid, _, _ in entries), "utf-8")
        missing = [
            (sid, which, path)
            for sid, _, _ in entries
            for which, path in (
                ("image", root / "JPEGImages" / f"{sid}.jpg"),
                ("mask", root / "SegmentationClass" / f"{sid}.png"),
            )
            if not path.is_file()
        ]
        if not missing:
            samples = index_split(root, "train", 21)
            assert [s.id for s in samples] == [sid for sid, _, _ in entries]
            assert all(s.image.is_file() and s.mask.is_file() for s in samples)
            return
        with pytest.raises(DataError) as info:
            index_split(root, "train", 21)
        sid, which, path = missing[0]
        assert_one_line_error(info.value, repr(sid), f"no {which}", path)


# --- the dataset and the data stage over a damaged folder -----------------------------------------
def stub_ctx(run_dir: Path, cfg: SegmentationConfig):
    """A real RunContext of a segmentation data stage (its manifest in ``run_dir``)."""
    return stage_context(run_dir, "segmentation", cfg)


def config(root: Path | None, num_classes: int, seed: int = 0, **data) -> SegmentationConfig:
    return SegmentationConfig.model_validate(
        {
            "seed": seed,
            "data": {"root": None if root is None else str(root), "image_size": 32, **data},
            "model": {"num_classes": num_classes},
        }
    )


def assert_items_well_formed(ds: VOCSegmentation, size: int, num_classes: int) -> None:
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (3, size, size) and x.dtype == np.float32 and np.isfinite(x).all()
        assert y.shape == (size, size) and y.dtype == np.int64
        ids = np.unique(y)
        assert np.all(((ids >= 0) & (ids < num_classes)) | (ids == IGNORE)), ids


MASK_FAULTS = ["none", "stray id", "other size", "rgb mode", "hostile", "missing"]
IMAGE_FAULTS = ["none", "hostile", "missing"]


@st.composite
def voc_samples(draw, num_classes: int):
    """One sample's files and what is wrong with them (image fault, mask fault)."""
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    image_fault, mask_fault = draw(st.sampled_from(IMAGE_FAULTS)), draw(st.sampled_from(MASK_FAULTS))
    rgb = draw(hnp.arrays(np.uint8, (h, w, 3)))
    image = encode_image(Image.fromarray(rgb), draw(st.sampled_from(["JPEG", "PNG"])))
    if image_fault == "hostile":
        image = draw(hostile_image_bytes())[0]
    ids = draw(hnp.arrays(np.uint8, (h, w), elements=st.integers(0, num_classes - 1) | st.just(IGNORE)))
    mask = png_mask(ids)
    if mask_fault == "stray id":
        ids[draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))] = draw(st.integers(num_classes, 254))
        mask = png_mask(ids)
    elif mask_fault == "other size":
        mask = png_mask(np.zeros((h + draw(st.integers(1, 3)), w), np.uint8))
    elif mask_fault == "rgb mode":
        mask = encode_image(Image.fromarray(ids).convert("RGB"), "PNG")
    elif mask_fault == "hostile":
        mask = draw(hostile_image_bytes())[0]
    return image_fault, mask_fault, image, mask


@settings(max_examples=60)
@given(data=st.data(), num_classes=st.integers(2, 30), n=st.integers(1, 3))
def test_data_stage_over_a_damaged_folder_gives_tensors_or_one_line_data_error(data, num_classes, n):
    samples = [data.draw(voc_samples(num_classes)) for _ in range(n)]
    with fresh_folder() as d:
        root = d / "VOC"
        for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
            (root / sub).mkdir(parents=True)
        culprits = []  # files of damaged samples: an error must name one of them
        must_fail = False  # a fault no luck can hide (hostile bytes may still decode as an image)
        for i, (image_fault, mask_fault, image, mask) in enumerate(samples):
            ipath, mpath = root / "JPEGImages" / f"s{i}.jpg", root / "SegmentationClass" / f"s{i}.png"
            if image_fault != "missing":
                ipath.write_bytes(image)
            if mask_fault != "missing":
                mpath.write_bytes(mask)
            if image_fault != "none":
                culprits.append(ipath)
            if mask_fault != "none":
                culprits += [mpath, ipath] if mask_fault == "other size" else [mpath]
            must_fail |= image_fault == "missing" or mask_fault in ("stray id", "rgb mode", "missing")
            must_fail |= image_fault == "none" and mask_fault == "other size"
        ids = "".join(f"s{i}\n" for i in range(n))
        for split in ("train", "val"):
            (root / "ImageSets/Segmentation" / f"{split}.txt").write_text(ids)
        ctx = stub_ctx(d / "run", config(root, num_classes))
        try:
            seg = build_data(ctx)
            for ds in (seg.val, seg.train):
                assert_items_well_formed(ds, 32, num_classes)
        except Exception as err:  # noqa: BLE001
            assert culprits, f"an intact folder was refused: {err}"
            msg = assert_one_line_error(err)
            assert any(str(p) in msg for p in culprits), f"no damaged file named in: {msg}"
            return
        assert not must_fail, f"a damaged folder was accepted: {samples}"
        assert len(seg.train) == len(seg.val) == n and ctx.manifest.data["metrics"] == {
            "train_images": n,
            "val_images": n,
        }


@settings(max_examples=40)
@given(
    image_hw=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    mask_hw=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    train=st.booleans(),
)
def test_image_and_mask_of_different_sizes_are_named_with_both_sizes(image_hw, mask_hw, train):
    with fresh_folder() as root:
        for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
            (root / sub).mkdir(parents=True)
        (root / "JPEGImages/a.jpg").write_bytes(encode_image(Image.new("RGB", image_hw[::-1], (9, 99, 199)), "JPEG"))
        (root / "SegmentationClass/a.png").write_bytes(png_mask(np.zeros(mask_hw, np.uint8)))
        (root / "ImageSets/Segmentation/val.txt").write_text("a\n")
        ds = VOCSegmentation(root, "val", 21, 32, train=train)
        if image_hw == mask_hw:
            assert_items_well_formed(ds, 32, 21)
            return
        with pytest.raises(DataError) as info:
            ds[0]
        (ih, iw), (mh, mw) = image_hw, mask_hw
        assert_one_line_error(
            info.value, root / "JPEGImages/a.jpg", root / "SegmentationClass/a.png", f"{mw}x{mh}", f"{iw}x{ih}"
        )


@settings(max_examples=60)
@given(data=st.data(), num_classes=st.integers(2, 40), size=st.integers(4, 16))
def test_eval_items_give_back_the_written_pixels_and_ids(data, num_classes, size):
    """At the stored size the eval transform is lossless: y is the mask, x un-normalizes to the image."""
    rgb = data.draw(hnp.arrays(np.uint8, (size, size, 3)))
    ids = data.draw(hnp.arrays(np.uint8, (size, size), elements=st.integers(0, num_classes - 1) | st.just(IGNORE)))
    with fresh_folder() as root:
        for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
            (root / sub).mkdir(parents=True)
        (root / "JPEGImages/a.jpg").write_bytes(encode_image(Image.fromarray(rgb), "PNG"))  # lossless content
        (root / "SegmentationClass/a.png").write_bytes(png_mask(ids))
        (root / "ImageSets/Segmentation/val.txt").write_text("a\n")
        x, y = VOCSegmentation(root, "val", num_classes, size)[0]
    assert np.array_equal(y, ids.astype(np.int64))
    back = (x.transpose(1, 2, 0) * np.asarray(STD, np.float32) + np.asarray(MEAN, np.float32)) * 255
    assert np.abs(back - rgb).max() < 1e-3


# --- the generated sample: round trip and determinism ----------------------------------------------
@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), num_classes=st.integers(2, 40))
def test_generated_sample_reads_back_through_the_data_stage(seed, num_classes):
    """The stage's own sample: VOC palette PNGs of sample ids; refused (ConfigError) iff num_classes is too small."""
    with fresh_folder() as d:
        ctx = stub_ctx(d, config(None, num_classes, seed, sample_train=2, sample_val=1, max_objects=2))
        needed = max(VOC_CLASSES.index(c) for c in SAMPLE_CLASSES)
        if num_classes <= needed:
            with pytest.raises(ConfigError) as info:
                build_data(ctx)
            assert_one_line_error(info.value, f"model.num_classes={num_classes}", needed + 1)
            return
        seg = build_data(ctx)
        assert (len(seg.train), len(seg.val), seg.num_classes, len(seg.classes)) == (2, 1, num_classes, num_classes)
        seen = set()
        for s in seg.train.samples + seg.val.samples:
            with Image.open(s.mask) as m, Image.open(s.image) as im:
                assert m.mode == "P" and m.getpalette() == voc_palette() and m.size == im.size
                arr = np.array(m)
            assert np.array_equal(load_mask(s.mask, num_classes), arr)
            seen |= set(np.unique(arr).tolist())
        assert seen <= SAMPLE_IDS and 0 in seen
        top = max(seen - {IGNORE})
        if top:  # the id check is tight: one class fewer and the largest id is refused, by name
            with pytest.raises(DataError, match=f"class id {top},"):
                index_split(seg.root, "train", top) + index_split(seg.root, "val", top)
        assert_items_well_formed(seg.train, 32, num_classes)
        assert_items_well_formed(seg.val, 32, num_classes)


@settings(max_examples=12)
@given(seed=st.integers(0, 2**32 - 1), other=st.integers(0, 2**32 - 1), size=st.integers(8, 24))
def test_generator_is_deterministic_by_seed(seed, other, size):
    with fresh_folder() as d:
        a = folder_bytes(generate_sample(d / "a", 2, 1, size, seed))
        b = folder_bytes(generate_sample(d / "b", 2, 1, size, seed))
        assert a == b  # same seed: the same bytes, file for file
        assert len([k for k in a if k.startswith("JPEGImages/")]) == 3
        if other != seed:
            c = folder_bytes(generate_sample(d / "c", 2, 1, size, other))
            assert a.keys() == c.keys()
            assert any(a[k] != c[k] for k in a if k.startswith("JPEGImages/"))


@settings(max_examples=40)
@given(seed=st.integers(0, 2**63), h=st.integers(8, 24), w=st.integers(8, 24), objects=st.integers(1, 4))
def test_render_sample_is_a_function_of_its_rng(seed, h, w, objects):
    im1, m1 = render_sample(np.random.default_rng(seed), h, w, objects)
    im2, m2 = render_sample(np.random.default_rng(seed), h, w, objects)
    assert np.array_equal(np.asarray(im1), np.asarray(im2)) and np.array_equal(np.asarray(m1), np.asarray(m2))
    assert im1.size == m1.size == (w, h) and im1.mode == "RGB" and m1.mode == "P"
    im3, _ = render_sample(np.random.default_rng(seed + 1), h, w, objects)
    assert not np.array_equal(np.asarray(im1), np.asarray(im3))
