"""Test kit for ``mlx serve``: a served run in a subprocess, and headless Chromium on its page.

``served(run_dir, "--format", "onnx")`` starts ``mlx serve RUN_DIR --port 0`` (127.0.0.1, a
free port), waits for the line it prints once it is ready (never a sleep) and yields a
``Server`` (``url``, ``proc``, ``stderr``); at the end it sends SIGTERM and waits. ``Browser``
drives Debian's ``chromium`` (never a downloaded browser) through the DevTools protocol over a
websocket (``websockets``, part of ``uvicorn[standard]``), enough to pick a file, click, wait
for a state and take a screenshot. Tests only; imports nothing heavy at module level.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

READY = re.compile(r"^mlx serve: .* on (http://\S+)$")


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    _seen: threading.Condition = field(default_factory=threading.Condition)

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float = 60) -> str:
        """The first stderr line matching ``pattern`` (waits for the server to print it)."""
        rx = re.compile(pattern)
        with self._seen:
            ok = self._seen.wait_for(lambda: any(rx.search(x) for x in self.lines) or self.proc.poll() is not None,
                                     timeout)  # fmt: skip
        hit = next((x for x in self.lines if rx.search(x)), None)
        assert ok and hit, f"no stderr line matching {pattern!r}; stderr so far:\n{self.stderr[-3000:]}"
        return hit


def _pump(server: Server) -> None:
    assert server.proc.stderr is not None
    for line in server.proc.stderr:
        with server._seen:
            server.lines.append(line.rstrip("\n"))
            server._seen.notify_all()
    with server._seen:
        server._seen.notify_all()


def start(run_dir: str | os.PathLike, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Server:
    """``mlx serve RUN_DIR --port 0 ARGS`` running and ready (its /health answers)."""
    cmd = [sys.executable, "-m", "mlx_core", "serve", str(run_dir), "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})  # fmt: skip
    server = Server(url="", proc=proc)
    threading.Thread(target=_pump, args=(server,), daemon=True).start()
    line = server.wait_for_line(READY.pattern, timeout)
    server.url = READY.match(line).group(1)  # type: ignore[union-attr]
    import httpx

    assert httpx.get(server.url + "/health", timeout=30).status_code == 200
    return server


def stop(server: Server, timeout: float = 60) -> int:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        return server.proc.wait()


@contextlib.contextmanager
def served(run_dir: str | os.PathLike, *args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    server = start(run_dir, *args, env=env)
    try:
        yield server
    finally:
        stop(server)


@contextlib.contextmanager
def served_in_process(run_dir: str | os.PathLike, *, fmt: str | None = None, overrides: list[str] | None = None,
                      device: str = "cpu", **opts: Any) -> Iterator[Any]:  # fmt: skip
    """The app ``mlx serve RUN_DIR`` serves, in this process, as a ``fastapi.testclient.TestClient``
    (its lifespan, batcher and body limit included; no port, no subprocess): for a plugin's tests
    where the predictor is already loaded once and a second interpreter would cost seconds."""
    from fastapi.testclient import TestClient

    from .plugins import Registry
    from .serve_app import MB, BodyLimitedApp, ServeOptions, create_app
    from .serving import build_predictor

    options = ServeOptions(**opts)
    predictor, ctx = build_predictor(Registry(), run_dir, fmt=fmt, overrides=overrides or [], device=device)
    app = BodyLimitedApp(create_app(predictor, ctx, options), int(options.max_body_mb * MB))
    with TestClient(app) as client:
        yield client


def predict_in_process(plugin: str, run_dir: str | os.PathLike, inputs: list[str], *overrides: str,
                       device: str = "cpu") -> list[dict[str, Any]]:  # fmt: skip
    """What ``mlx predict PLUGIN RUN_DIR INPUTS --json`` prints, run in this process."""
    import io

    from rich.console import Console

    from . import runner
    from .plugins import Registry

    rows, _ = runner.predict(Registry(), plugin, run_dir, list(inputs), overrides=list(overrides), device=device,
                             console=Console(file=io.StringIO()))  # fmt: skip
    return rows


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium page driven over the DevTools protocol."""

    def __init__(self, url: str, width: int = 1200, height: int = 1000) -> None:
        from websockets.sync.client import connect

        exe = chromium()
        assert exe, "chromium is not installed"
        self.profile = tempfile.mkdtemp(prefix="mlx-chromium-")
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        ws_url = None
        assert self.proc.stderr is not None
        for line in self.proc.stderr:  # Chromium names its browser endpoint once it is up
            if "DevTools listening on" in line:
                ws_url = line.split("on", 1)[1].strip()
                break
        assert ws_url, "chromium exited without a DevTools endpoint"
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()  # type: ignore[union-attr]
        port = ws_url.split(":")[2].split("/")[0]
        import httpx

        pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=30).json() if t["type"] == "page"]
        self._connection = connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
        self.ws = self._connection.__enter__()
        self.next_id = 0

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=120))
            if msg.get("id") == self.next_id:
                assert "error" not in msg, msg["error"]
                return msg.get("result", {})

    def js(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in res, res["exceptionDetails"]
        return res["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 120) -> Any:
        """Poll ``expression`` in the page until it is truthy (the page's own state, not a clock)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"page never satisfied {expression!r}")

    def set_file(self, selector: str, path: str | os.PathLike) -> None:
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        assert node, f"no element {selector!r} on the page"
        self.send("DOM.setFileInputFiles", nodeId=node, files=[str(Path(path).resolve())])

    def screenshot(self, path: str | os.PathLike) -> Path:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        out = Path(path)
        out.write_bytes(base64.b64decode(data))
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._connection.__exit__(None, None, None)
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
