"""`mlx serve` on the finished multimodal run, in process: image + question -> the answer and
top-k `mlx predict` gives, /health and /info, and bad input as one JSON error (the server keeps
serving); the page at / in headless Chromium."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="mlx-core[serve] not installed")

import httpx

from mlx_core.testing_serve import chromium, predict_in_process, served_in_process

from ..serve_page_kit import served_on_a_port, submit_page

QUESTION = "what color is the circle?"


def test_serves_the_answers_mlx_predict_gives_and_refuses_bad_input(exported):
    img = sorted((exported / "data" / "shapes" / "images").glob("val_*.png"))[1]
    with served_in_process(exported) as client:
        assert client.get("/health").json()["status"] == "ok"
        info = client.get("/info").json()
        recorded = {a["path"]: a["sha256"] for a in json.loads((exported / "run.json").read_text())["artifacts"]}
        assert {a["path"]: a["sha256"] for a in info["artifacts"]} == {
            p: recorded[p] for p in ("export/model.pt2", "export/answers.txt", "export/preprocess.json",
                                     "export/tokenizer/vocab.txt")
        }  # fmt: skip
        r = client.post(
            "/predict", files={"image": (img.name, img.read_bytes(), "image/png")}, data={"question": QUESTION}
        )
        assert r.status_code == 200, r.text
        served = r.json()
        assert len(served["top_k"]) == 5 and served["answer"] == served["top_k"][0]["answer"]
        png = ("x.png", img.read_bytes(), "image/png")
        bad = [
            ("not an image", {"files": {"image": ("x.png", b"not a picture", "image/png")}, "data": {"question": "q?"}},
             400, "not a readable image"),
            ("a blank question", {"files": {"image": png}, "data": {"question": "   "}}, 400, "blank"),
            ("no question", {"files": {"image": png}}, 422, "question"),
        ]  # fmt: skip
        for what, kw, status, words in bad:
            got = client.post("/predict", **kw)
            assert got.status_code == status, (what, got.text)
            assert list(got.json()) == ["error"] and words in got.json()["error"], what
            assert client.get("/health").json()["status"] == "ok", what
    rows = predict_in_process("multimodal", exported, [str(img), QUESTION])
    assert [(row["answer"], row["probability"]) for row in rows] == [
        (s["answer"], s["probability"]) for s in served["top_k"]
    ]


@pytest.mark.skipif(not chromium(), reason="needs Debian's chromium (CI installs it)")
def test_page_shows_the_answer_and_top_k_for_a_picked_image_and_question_in_headless_chromium(exported, tmp_path):
    img = sorted((exported / "data" / "shapes" / "images").glob("val_*.png"))[1]
    with served_on_a_port(exported) as url:
        page = submit_page(url, tmp_path / "multimodal-page.png", files={"image": img}, values={"question": QUESTION})
        api = httpx.post(url + "/predict", files={"image": (img.name, img.read_bytes(), "image/png")},
                         data={"question": QUESTION}, timeout=120).json()  # fmt: skip
    assert page["state"] == "done", page["error"]
    assert page["shown"]["answer"] == api["answer"]
    header, *rows = page["shown"]["top_k"]  # a table: one row per answer, best first
    assert header == ["answer", "probability"] and len(rows) == len(api["top_k"]) == 5
    assert [(a, float(p)) for a, p in rows] == [(s["answer"], s["probability"]) for s in api["top_k"]]
    assert page["screenshot"].stat().st_size > 0
