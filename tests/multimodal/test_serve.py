"""`mlx serve` on the finished multimodal run, in process: image + question -> the answer and
top-k `mlx predict` gives, /health and /info, and bad input as one JSON error (the server keeps serving)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="mlx-core[serve] not installed")

from mlx_core.testing_serve import predict_in_process, served_in_process

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
