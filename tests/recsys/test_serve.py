"""`mlx serve` on the shared finished recsys run, in process: Criteo-format lines -> the click
probabilities `mlx predict` writes, /health and /info, and bad input as one JSON error (the
server keeps serving); the page at / in headless Chromium."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="mlx-core[serve] not installed")

import httpx

from mlx_core.testing_serve import chromium, predict_in_process, served_in_process

from ..serve_page_kit import served_on_a_port, submit_page
from .test_cli import held_out_lines


def test_serves_the_probabilities_mlx_predict_writes_and_refuses_bad_input(trained_run, tmp_path):
    run_dir, m = trained_run
    lines = held_out_lines(run_dir, m, 20)
    lines[-3:] = [line.split("\t", 1)[1] for line in lines[-3:]]  # Criteo's test format: no label
    with served_in_process(run_dir) as client:
        assert client.get("/health").json()["status"] == "ok"
        info = client.get("/info").json()
        recorded = {a["path"]: a["sha256"] for a in m["artifacts"]}
        assert {a["path"]: a["sha256"] for a in info["artifacts"]} == {
            p: recorded[p] for p in ("export/meta.json", "export/model_int8.pt")
        }
        r = client.post("/predict", json={"lines": lines})
        assert r.status_code == 200, r.text
        served = r.json()
        assert served["format"] == "int8" and len(served["probabilities"]) == 20
        bad = [
            ("no lines", {"lines": []}, 422, "lines"),
            ("a short line", {"lines": [lines[0], "1\t2\t3"]}, 400, "line 2: expected 40 tab-separated columns"),
            ("a bad label", {"lines": ["7" + lines[0][1:]]}, 400, "label '7'"),
            ("an extra field", {"lines": lines[:1], "k": 1}, 422, "'k'"),
        ]
        for what, body, status, words in bad:
            got = client.post("/predict", json=body)
            assert got.status_code == status, (what, got.text)
            assert list(got.json()) == ["error"] and words in got.json()["error"], what
            assert client.get("/health").json()["status"] == "ok", what
    with served_in_process(run_dir, fmt="float") as client:  # --format float: the float scorer
        flt = client.post("/predict", json={"lines": lines}).json()
        assert [a["path"] for a in client.get("/info").json()["artifacts"]] == [
            "export/meta.json",
            "export/model_float.pt",
        ]
    assert flt["format"] == "float"
    assert max(abs(a - b) for a, b in zip(flt["probabilities"], served["probabilities"], strict=True)) < 0.05
    src = tmp_path / "some.tsv"
    src.write_text("\n".join(lines) + "\n")
    (row,) = predict_in_process("recsys", run_dir, [str(src)])
    written = [float(x) for x in open(row["scores"]).read().split()]
    assert written == [float(f"{p:.6f}") for p in served["probabilities"]]


@pytest.mark.skipif(not chromium(), reason="needs Debian's chromium (CI installs it)")
def test_page_shows_the_click_probabilities_of_pasted_lines_in_headless_chromium(trained_run, tmp_path):
    run_dir, m = trained_run
    lines = held_out_lines(run_dir, m, 4)
    # Criteo's test format (no label) with the first integer missing: the line starts with a tab,
    # and one with its last categorical empty: it ends with one; the page must send both whole
    lines[2] = "\t" + lines[2].split("\t", 2)[2]
    lines[3] = lines[3].rsplit("\t", 1)[0] + "\t"
    with served_on_a_port(run_dir) as url:
        page = submit_page(url, tmp_path / "recsys-page.png", values={"lines": "\n".join(lines) + "\n"})
        api = httpx.post(url + "/predict", json={"lines": lines}, timeout=120).json()
    assert page["state"] == "done", page["error"]
    assert [float(p) for p in page["shown"]["probabilities"].split("\n")] == api["probabilities"]  # one a line
    assert len(api["probabilities"]) == 4 and page["shown"]["format"] == api["format"] == "int8"
    assert page["screenshot"].stat().st_size > 0
