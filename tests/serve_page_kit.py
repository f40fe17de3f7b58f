"""The page ``mlx serve`` shows at ``/``, in a real headless Chromium, for the plugins' serve tests.

``served_on_a_port(run_dir)`` serves the app ``mlx serve RUN_DIR`` serves (``create_app``, its
lifespan, batcher and body limit) with uvicorn on a free port, in a thread of the test process:
the browser needs a real socket, and the plugin's model is then loaded in this process (a second
interpreter importing torch costs tens of seconds on a busy CI machine). ``submit_page`` fills the
form the core built from the request schema, clicks Predict, waits for the page's own state
(``#result[data-state]``, never a clock) and returns the text of every shown field and a
screenshot. Hand-written rather than a library: ``mlx_core.testing_serve.Browser`` already drives
Chromium; this only adds the thread and the form-filling the four plugins share.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlx_core.testing_serve import Browser


@contextlib.contextmanager
def served_on_a_port(run_dir: str | Path, *, device: str = "cpu", fmt: str | None = None) -> Iterator[str]:
    """The base URL of the run's app served on 127.0.0.1 (a free port) until the block ends."""
    import uvicorn

    from mlx_core.plugins import Registry
    from mlx_core.serve_app import MB, BodyLimitedApp, ServeOptions, create_app
    from mlx_core.serving import build_predictor

    options = ServeOptions()
    predictor, ctx = build_predictor(Registry(), run_dir, fmt=fmt, overrides=[], device=device)
    app = BodyLimitedApp(create_app(predictor, ctx, options), int(options.max_body_mb * MB))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)  # not the main thread: uvicorn leaves signals alone
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:  # uvicorn's own flag: set once the socket listens and the lifespan started
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


def submit_page(url: str, shot: Path, *, files: dict[str, Path] | None = None,
                values: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Fill the page's form (file pickers by field name, text boxes by field name), click Predict,
    wait for the answer; {"state", "error", "shown", "screenshot"}: ``shown`` maps each answer field to
    the text the page shows for it (a table's: its rows of cell texts, the header row first)."""
    browser = Browser(url + "/")
    try:
        browser.wait_for("document.readyState === 'complete' && !!document.getElementById('submit')")
        for name, path in (files or {}).items():
            browser.set_file(f"input[type=file][name={name}]", path)
        for name, text in (values or {}).items():
            browser.js(f"document.querySelector('#form [name={name}]').value = {json.dumps(text)}")
        browser.js("document.getElementById('submit').click()")
        state = browser.wait_for("['done', 'error'].includes(document.getElementById('result').dataset.state) && "
                                 "document.getElementById('result').dataset.state")  # fmt: skip
        error = browser.js("document.getElementById('error').textContent")
        shown = browser.js(
            "Object.fromEntries([...document.querySelectorAll('#result [class^=out-]')]"
            ".map(e => [e.className.slice(4), e.tagName === 'TABLE' ?"
            " [...e.rows].map(r => [...r.cells].map(c => c.textContent)) : e.textContent]))"
        )
        path = browser.screenshot(shot)
    finally:
        browser.close()
    print(f"screenshot: {path}")
    return {"state": state, "error": error, "shown": shown, "screenshot": path}
