"""`mlx serve` on the core test plugin linreg: endpoints, the shared predictor, batching, bad
input over HTTP, artifact checks before binding, graceful SIGTERM. One served run per module."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import threading
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="mlx-core[serve] not installed")
httpx = pytest.importorskip("httpx")

from mlx_core.testing import cli, one_line_error  # noqa: E402
from mlx_core.testing_serve import served, start, stop  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    proc = cli("run", "linreg", "export", "--runs-dir", str(runs), "--set", "train.epochs=50")
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def server(run_dir):
    # a 2 KB body limit so that the limit test needs no big upload
    with served(run_dir, "--max-body-mb", "0.002", "--max-batch", "1") as s:
        yield s


def post(server, **kw):
    return httpx.post(server.url + "/predict", timeout=60, **kw)


def test_endpoints_info_and_the_same_answer_as_mlx_predict(server, run_dir):
    info = httpx.get(server.url + "/info").json()
    manifest = json.loads((run_dir / "run.json").read_text())
    assert info["plugin"] == "linreg" and info["run_id"] == manifest["id"]
    digest = hashlib.sha256((run_dir / "export/model.json").read_bytes()).hexdigest()
    assert info["artifacts"] == [{"path": "export/model.json", "sha256": digest, "size": info["artifacts"][0]["size"],
                                  "kind": "model", "format": "json"}]  # fmt: skip
    assert "max_abs_diff" in info["parity"]["export/model.json"]
    assert set(info["input_schema"]["properties"]) == {"x", "label"} and "train_mse" in str(info["metrics"])
    served_y = [post(server, json={"x": x}).json()["y"] for x in (0.0, 1.5)]
    proc = cli("predict", "linreg", str(run_dir), "0", "1.5", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [r["y"] for r in json.loads(proc.stdout)] == served_y
    page = httpx.get(server.url + "/").text
    assert 'name="x"' in page and 'type="number"' in page
    spec = httpx.get(server.url + "/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert body["application/json"]["examples"]["example 1"]["value"] == {"x": 2.0, "label": "two"}
    assert httpx.get(server.url + "/docs").status_code == 200


BAD = [
    # (what, request kwargs, status, words the message must hold)
    ("not JSON", {"content": b"{x", "headers": {"content-type": "application/json"}}, 400, "not JSON"),
    ("invalid UTF-8", {"content": b'{"x": "\xff"}', "headers": {"content-type": "application/json"}}, 400, "UTF-8"),
    ("empty body", {"content": b"", "headers": {"content-type": "application/json"}}, 400, "empty"),
    ("wrong content type", {"content": b"x=1", "headers": {"content-type": "text/plain"}}, 415, "text/plain"),
    ("missing field", {"json": {"label": "a"}}, 422, "'x'"),
    ("extra field", {"json": {"x": 1, "z": 2}}, 422, "'z'"),
    ("empty text", {"json": {"x": 1, "label": ""}}, 422, "'label'"),
    ("not an object", {"json": [1, 2]}, 422, "list"),
    ("over the body limit", {"json": {"x": 1, "label": "a" * 4000}}, 413, "limit"),
]


@pytest.mark.parametrize(("what", "kw", "status", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_json_error_and_the_server_keeps_serving(server, what, kw, status, words):
    r = post(server, **kw)
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"] and words in body["error"] and "\n" not in body["error"]
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_concurrent_requests_run_as_one_batch_with_the_unbatched_results(run_dir):
    from mlx_core.plugins import Registry
    from mlx_core.serving import build_predictor

    xs = [0.5 * i for i in range(6)]
    # a batch goes as soon as it is full: with a wait far longer than the test, the six requests
    # can only come back if they ran as one batch of six (no clock decides it)
    with served(run_dir, "--max-batch", "6", "--max-wait-ms", "10000") as s:
        out: dict[float, dict] = {}

        def one(x: float) -> None:
            out[x] = httpx.post(s.url + "/predict", json={"x": x}, timeout=60).json()

        threads = [threading.Thread(target=one, args=(x,)) for x in xs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = httpx.get(s.url + "/info").json()["batching"]
    assert stats["sizes"] == {"6": 1}, stats
    predictor, _ = build_predictor(Registry(), run_dir)
    alone = [predictor.run([predictor.request(x=x)])[0].model_dump() for x in xs]
    assert [out[x] for x in xs] == alone


def test_workers_each_load_the_predictor_and_answer(run_dir):
    with served(run_dir, "--workers", "2") as s:
        assert httpx.post(s.url + "/predict", json={"x": 1.0}, timeout=60).json()["label"] == "point"
        with s._seen:  # each worker process prints the ready line once its own predictor is loaded
            assert s._seen.wait_for(lambda: sum("on http" in line for line in s.lines) == 2, 120), s.stderr
    assert s.proc.returncode == 0, s.stderr


def test_missing_or_changed_artifact_is_refused_before_binding(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    model = copy / "export/model.json"
    model.write_text(model.read_text().replace("}", ' , "w2": 0}'))
    line = one_line_error(cli("serve", str(copy), "--port", "0"))
    assert "export/model.json" in line and "changed" in line and "sha256" in line
    model.unlink()
    line = one_line_error(cli("serve", str(copy), "--port", "0"))
    assert "export/model.json" in line and "missing" in line
    line = one_line_error(cli("serve", str(tmp_path / "nowhere"), "--port", "0"))
    assert "run.json" in line


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(run_dir, tmp_path):
    release = tmp_path / "release"
    server = start(run_dir, "--max-batch", "1", env={"MLX_TEST_HOLD": f"serve:predict={release}"})
    try:
        result: dict = {}
        t = threading.Thread(
            target=lambda: result.update(r=httpx.post(server.url + "/predict", json={"x": 2}, timeout=120))
        )
        t.start()
        held = Path(f"{release}.held")
        server.wait_for_line("on http")  # (already printed) then wait for the request to be held
        while not held.exists():
            assert t.is_alive() and server.proc.poll() is None
            t.join(0.01)
        server.proc.send_signal(signal.SIGTERM)
        server.wait_for_line("stopping; requests in flight finish first")
        release.touch()
        t.join(60)
        assert result["r"].status_code == 200 and result["r"].json()["x"] == 2.0
        assert server.proc.wait(60) == 0, server.stderr
    finally:
        stop(server)


def test_page_built_from_the_schema_answers_in_headless_chromium(server, tmp_path):
    from mlx_core.testing_serve import Browser, chromium

    if not chromium():
        pytest.skip("needs Debian's chromium (CI installs it)")
    browser = Browser(server.url + "/")
    try:
        browser.wait_for("document.readyState === 'complete' && !!document.querySelector('input[name=x]')")
        browser.js("document.querySelector('input[name=x]').value = '2'")
        browser.js("document.getElementById('submit').click()")
        y = browser.wait_for("document.getElementById('result').dataset.state === 'done' && "
                             "document.querySelector('pre.out-y').textContent")  # fmt: skip
        shot = browser.screenshot(tmp_path / "linreg-page.png")
    finally:
        browser.close()
    print(f"screenshot: {shot}")
    assert float(y) == httpx.post(server.url + "/predict", json={"x": 2}).json()["y"]
