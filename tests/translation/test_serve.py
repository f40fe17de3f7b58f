"""`mlx serve` on the finished tiny translation run, in process: sentences -> the translations
`mlx predict` gives, /health and /info, and bad input as one JSON error (the server keeps serving);
the page at / in headless Chromium."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="mlx-core[serve] not installed")

import httpx

from mlx_core.testing_serve import chromium, predict_in_process, served_in_process

from ..serve_page_kit import served_on_a_port, submit_page

SENTENCES = ["The cat is blue.", "A dog is under the seven red tables."]
BAD = [
    ("no sentences", {"sentences": []}, 422, "sentences"),
    ("an empty sentence", {"sentences": ["fine", ""]}, 422, "at least 1 character"),
    ("a missing field", {}, 422, "sentences"),
    ("an extra field", {"sentences": ["x"], "lang": "de"}, 422, "lang"),
]


def test_serves_the_translations_mlx_predict_gives_and_refuses_bad_input(tiny_run):
    with served_in_process(tiny_run) as client:
        assert client.get("/health").json()["status"] == "ok"
        info = client.get("/info").json()
        recorded = {a["path"]: a["sha256"] for a in json.loads((tiny_run / "run.json").read_text())["artifacts"]}
        loaded = {a["path"]: a["sha256"] for a in info["artifacts"]}
        assert loaded["export/hf/model.safetensors"] == recorded["export/hf/model.safetensors"]
        assert all(recorded[p] == h for p, h in loaded.items()) and info["plugin"] == "translation"
        r = client.post("/predict", json={"sentences": SENTENCES})
        assert r.status_code == 200, r.text
        served = r.json()
        assert served["backend"] == "eager" and len(served["translations"]) == 2
        for what, body, status, words in BAD:
            bad = client.post("/predict", json=body)
            assert bad.status_code == status, (what, bad.text)
            assert list(bad.json()) == ["error"] and words in bad.json()["error"], what
            assert client.get("/health").json()["status"] == "ok", what
        invalid = client.post(
            "/predict", content=b'{"sentences": ["\xff"]}', headers={"content-type": "application/json"}
        )
        assert invalid.status_code == 400 and "UTF-8" in invalid.json()["error"]
    rows = predict_in_process("translation", tiny_run, SENTENCES)
    assert [row["translation"] for row in rows] == served["translations"]


@pytest.mark.skipif(not chromium(), reason="needs Debian's chromium (CI installs it)")
def test_page_shows_the_translation_of_a_typed_sentence_in_headless_chromium(tiny_run, tmp_path):
    with served_on_a_port(tiny_run) as url:
        page = submit_page(url, tmp_path / "translation-page.png", values={"sentences": "\n".join(SENTENCES)})
        api = httpx.post(url + "/predict", json={"sentences": SENTENCES}, timeout=120).json()
    assert page["state"] == "done", page["error"]
    assert page["shown"]["translations"] == "\n".join(api["translations"])  # one a line, as typed
    assert page["shown"]["backend"] == api["backend"] and page["screenshot"].stat().st_size > 0
