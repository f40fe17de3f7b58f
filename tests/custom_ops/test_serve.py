"""`mlx serve` / `mlx predict` on finished custom_ops exports (tiny RedNet, C++ involution), in
process: what the export records for serving, the class scores served == those `mlx predict`
gives, the served input == the training reader's, batched == unbatched, bad input as one JSON error (the server keeps serving), a changed operator
library refused, the page at / in headless Chromium. One torch and one Paddle export, made once for the module (in parallel)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="mlx-core[serve] not installed")

import httpx

from mlx_core import DataError, RunError
from mlx_core.testing import sets
from mlx_core.testing_serve import chromium, predict_in_process, served_in_process

from ..serve_page_kit import served_on_a_port, submit_page
from .conftest import DEVICE, MLX, PADDLE_DEVICE, TINY

pytestmark = pytest.mark.slow  # each export trains a tiny RedNet for one epoch
BACKENDS = {"torch": DEVICE, "paddle": PADDLE_DEVICE}


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """{backend: run dir} of one finished `mlx run custom_ops export` per backend (impl=custom)."""
    runs = tmp_path_factory.mktemp("runs")
    procs = {
        backend: subprocess.Popen(
            [
                *MLX,
                "run",
                "custom_ops",
                "export",
                "--runs-dir",
                str(runs / backend),
                "--device",
                device,
                *sets(*TINY, f"model.backend={backend}", "model.impl=custom"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for backend, device in BACKENDS.items()
    }
    out = {}
    for backend, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"{backend} export exited {proc.returncode}:\n{stderr[-4000:]}"
        out[backend] = Path(stdout.strip().splitlines()[-1])
    return out


def first_valid_image(run: Path) -> Path:
    return sorted((run / "data" / "sample" / "valid" / "1").iterdir())[0]


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_serves_the_class_scores_mlx_predict_gives_and_refuses_bad_input(exports, backend):
    run = exports[backend]
    manifest = json.loads((run / "run.json").read_text())
    exp = manifest["records"]["export"]
    assert exp["serve"]["classes"] == ["stripes-0deg", "stripes-90deg"]
    assert exp["serve"]["image_size"] == 32 and exp["serve"]["mean"] == [0.5] * 3
    fmt = "torch.export" if backend == "torch" else "paddle-inference"
    files = {"torch": ["export/model.pt2"], "paddle": ["export/model.json", "export/model.pdiparams"]}[backend]
    files += ["export/preprocess.json", f"export/mlx_involution_{backend}.so"]
    recorded = {a["path"]: a["sha256"] for a in manifest["artifacts"]}
    img = first_valid_image(run)
    with served_in_process(run) as client:
        info = client.get("/info").json()
        assert {a["path"]: a["sha256"] for a in info["artifacts"]} == {p: recorded[p] for p in files}
        assert info["format"] == fmt and info["classes"] == ["stripes-0deg", "stripes-90deg"]
        assert 'type="file"' in client.get("/").text  # the page's form: a file picker for the image
        r = client.post("/predict", files={"image": (img.name, img.read_bytes(), "image/jpeg")})
        assert r.status_code == 200, r.text
        served = r.json()
        bad = [
            ("not an image", {"files": {"image": ("x.jpg", b"not a picture", "image/jpeg")}}, 400,
             "not a readable image"),
            ("a wrong content type", {"content": b"image bytes", "headers": {"content-type": "image/jpeg"}}, 415,
             "content type"),
        ]  # fmt: skip
        for what, kw, status, words in bad:
            got = client.post("/predict", **kw)
            assert got.status_code == status, (what, got.text)
            assert list(got.json()) == ["error"] and words in got.json()["error"], (what, got.text)
            assert client.get("/health").json()["status"] == "ok", what
    assert served["format"] == fmt and served["name"] == served["top_k"][0]["name"]
    assert [s["label"] for s in served["top_k"]] in (["1", "2"], ["2", "1"])
    rows = predict_in_process("custom_ops", run, [str(img)])
    assert [(row["name"], row["probability"], row["format"]) for row in rows] == [
        (s["name"], s["probability"], fmt) for s in served["top_k"]
    ]


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_a_batch_gives_the_unbatched_results(exports, backend):
    from mlx_custom_ops.serve import ClassifyRequest

    from mlx_core.plugins import Registry
    from mlx_core.serving import b64, build_predictor

    run = exports[backend]
    predictor, _ = build_predictor(Registry(), run)
    assert predictor.batches
    images = sorted((run / "data" / "sample" / "valid").glob("*/*.jpg"))[:3]
    requests = [ClassifyRequest(image=b64(p.read_bytes())) for p in images]
    # the served input is the training reader's (resize, normalisation, layout), bit for bit
    from mlx_custom_ops.data import read_folder

    valid = read_folder(run / "data" / "sample", 32).valid
    want = valid.normalized([valid.files.index(str(p.relative_to(run / "data" / "sample"))) for p in images])
    assert np.array_equal(np.stack([predictor.prepare(r) for r in requests]), want)
    batched = predictor.run(requests)
    assert batched == [predictor.run([r])[0] for r in requests]
    rows = predict_in_process("custom_ops", run, [str(p) for p in images])  # mlx predict: one batch of 3
    assert [r["probability"] for r in rows] == [s.probability for res in batched for s in res.top_k]


def test_a_changed_operator_library_is_refused(exports, tmp_path, monkeypatch):
    from mlx_custom_ops import runtime

    from mlx_core.plugins import Registry
    from mlx_core.serving import build_predictor

    run = Path(shutil.copytree(exports["torch"], tmp_path / "run"))
    lib = run / "export" / "mlx_involution_torch.so"
    lib.write_bytes(lib.read_bytes() + b"\0")
    with pytest.raises(RunError, match="mlx_involution_torch.so .*changed since the run wrote it"):
        build_predictor(Registry(), run)
    # another build of the operator already registered in this process: refused, not mixed
    monkeypatch.setitem(runtime._REGISTERED, "torch", ("/elsewhere/mlx_involution_torch.so", "0" * 64))
    with pytest.raises(RunError, match="already loaded another build of the torch involution operator"):
        build_predictor(Registry(), exports["torch"])
    (run / "export" / "preprocess.json").unlink()  # a run exported before serving existed
    with pytest.raises(RunError, match="no export/preprocess.json .*export it again"):
        build_predictor(Registry(), run)


def test_predict_names_a_missing_or_unreadable_image(exports, tmp_path):
    (tmp_path / "notes.jpg").write_text("not a picture")
    for path, words in (
        (tmp_path / "nope.jpg", "nope.jpg does not exist"),
        (tmp_path / "notes.jpg", "notes.jpg is not a readable image"),
    ):
        with pytest.raises(DataError, match=words):
            predict_in_process("custom_ops", exports["torch"], [str(path)])


@pytest.mark.skipif(not chromium(), reason="needs Debian's chromium (CI installs it)")
def test_page_shows_the_class_scores_of_an_uploaded_image_in_headless_chromium(exports, tmp_path):
    run = exports["torch"]  # the page is the core's, the same for both backends: one is enough
    img = first_valid_image(run)
    with served_on_a_port(run, device=DEVICE) as url:
        page = submit_page(url, tmp_path / "custom-ops-page.png", files={"image": img})
        api = httpx.post(url + "/predict", files={"image": (img.name, img.read_bytes(), "image/jpeg")}, timeout=120)
    assert page["state"] == "done", page["error"]
    api = api.json()
    assert page["shown"]["name"] == api["name"] and page["shown"]["format"] == api["format"] == "torch.export"
    header, *rows = page["shown"]["top_k"]  # a table: one row per class, best first
    assert header == ["name", "label", "probability"] and len(rows) == len(api["top_k"]) == 2
    assert [(n, lab, float(p)) for n, lab, p in rows] == [
        (s["name"], s["label"], s["probability"]) for s in api["top_k"]
    ]
    assert page["screenshot"].stat().st_size > 0
