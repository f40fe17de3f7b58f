"""`mlx serve` on a finished segmentation run: upload -> mask and overlay (the very bytes `mlx
predict` writes), bad images over HTTP, and the page at / in a real headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="mlx-core[serve] not installed")
httpx = pytest.importorskip("httpx")

from mlx_core.testing import cli  # noqa: E402
from mlx_core.testing_serve import Browser, chromium, served  # noqa: E402

from .seg_helpers import DEVICE  # noqa: E402


@pytest.fixture(scope="module")
def server(exported_run):
    with served(exported_run, "--device", "cpu") as s:  # the exports run on CPU runtimes
        yield s


def sample(run_dir):
    return sorted((run_dir / "data/voc-sample/JPEGImages").glob("*.jpg"))[0]


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels but holds almost none: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_upload_returns_the_mask_and_overlay_mlx_predict_writes(server, exported_run):
    src = sample(exported_run)
    r = httpx.post(server.url + "/predict", files={"image": (src.name, src.read_bytes(), "image/jpeg")}, timeout=120)
    assert r.status_code == 200, r.text
    res = r.json()
    mask = Image.open(io.BytesIO(base64.b64decode(res["mask"])))
    assert mask.mode == "P" and mask.size == Image.open(src).size and res["format"] == "executorch"
    # JSON with the image in base64 is the same request
    again = httpx.post(
        server.url + "/predict", json={"image": base64.b64encode(src.read_bytes()).decode()}, timeout=120
    )
    assert again.json() == res
    proc = cli("predict", "segmentation", str(exported_run), str(src), "--json", "--device", DEVICE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = json.loads(proc.stdout)
    assert row["classes"] == res["classes"] and row["size"] == res["size"]
    assert open(row["mask"], "rb").read() == base64.b64decode(res["mask"])
    assert open(row["overlay"], "rb").read() == base64.b64decode(res["overlay"])
    info = httpx.get(server.url + "/info").json()
    recorded = {a["path"]: a["sha256"] for a in json.loads((exported_run / "run.json").read_text())["artifacts"]}
    assert [(a["path"], a["sha256"]) for a in info["artifacts"]] == [("export/model.pte", recorded["export/model.pte"])]
    assert info["parity"]["export/model.pte"]["mask_agreement"] >= 0.99 and "val_miou" in info["metrics"]


BAD_IMAGES = [
    ("not an image", b"hello, not a picture", 400, "not a readable image"),
    ("decompression bomb", png_header(30000, 30000), 400, "pixels"),
    ("empty file", b"", 400, "empty"),
]


@pytest.mark.parametrize(("what", "data", "status", "words"), BAD_IMAGES, ids=[b[0] for b in BAD_IMAGES])
def test_bad_images_are_one_json_error_and_the_server_keeps_serving(server, what, data, status, words):
    r = httpx.post(server.url + "/predict", files={"image": ("x.png", data, "image/png")}, timeout=60)
    assert r.status_code == status, r.text
    assert list(r.json()) == ["error"] and words in r.json()["error"]
    assert httpx.get(server.url + "/health").status_code == 200


def test_image_as_a_text_field_is_refused(server):
    r = httpx.post(server.url + "/predict", data={"image": "abc"}, files={"other": ("a", b"x")}, timeout=60)
    assert r.status_code == 422 and "image" in r.json()["error"]
    assert httpx.get(server.url + "/health").status_code == 200


@pytest.mark.skipif(not chromium(), reason="needs Debian's chromium (CI installs it)")
def test_page_shows_the_overlay_of_an_uploaded_photo_in_headless_chromium(server, exported_run, tmp_path):
    src = sample(exported_run)
    browser = Browser(server.url + "/")
    try:
        browser.wait_for("document.readyState === 'complete' && !!document.querySelector('input[type=file]')")
        browser.set_file("input[type=file]", src)
        browser.js("document.getElementById('submit').click()")
        state = browser.wait_for("['done', 'error'].includes(document.getElementById('result').dataset.state) && "
                                 "document.getElementById('result').dataset.state")  # fmt: skip
        assert state == "done", browser.js("document.getElementById('error').textContent")
        browser.wait_for(
            "document.querySelector('img.out-overlay') && document.querySelector('img.out-overlay').complete"
        )
        width = browser.js("document.querySelector('img.out-overlay').naturalWidth")
        classes = browser.js("document.querySelector('pre.out-classes').textContent")
        shot = browser.screenshot(tmp_path / "serve-page.png")
    finally:
        browser.close()
    print(f"screenshot: {shot}")
    assert width == Image.open(src).width
    assert classes and "%" in classes or classes == "background only"
    assert Image.open(shot).size[0] > 0
