"""``mlx serve``: the HTTP app (FastAPI on uvicorn) around any plugin's ``Predictor``.

Knows no domain: the routes, the schemas in ``/docs`` and the page at ``/`` come from the
predictor's pydantic models. Imported only by ``mlx serve`` (extra ``mlx-core[serve]``).

Requests are parsed and prepared (``Predictor.prepare``) one by one, so a bad input fails
alone; prepared items wait in a queue, and one worker thread runs them through
``Predictor.predict`` in batches of up to ``max_batch`` gathered within ``max_wait_ms`` of the
first (a full batch goes at once). Every error is a 4xx/5xx with ``{"error": "one message"}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from .context import RunContext
from .errors import DataError, MlxError, UsageError
from .faults import hold_point
from .serving import Predictor

MB = 1024 * 1024


@dataclass
class ServeOptions:
    max_batch: int = 8
    max_wait_ms: float = 5.0
    max_body_mb: float = 20.0


class Problem(Exception):
    """An HTTP error with one message: becomes ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def validation_message(exc: ValidationError | RequestValidationError) -> str:
    """pydantic's first error as one line: ``field 'x': Field required``."""
    errs = exc.errors()
    if not errs:
        return "invalid request"
    first = errs[0]
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    msg = first.get("msg", "invalid")
    if first.get("type") == "extra_forbidden":
        msg = "unknown field (not in the request schema)"
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"field {loc!r}: {msg}{more}" if loc else f"{msg}{more}"


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes is refused with 413 before the app reads it
    (by its Content-Length) or as soon as the streamed bytes pass the limit."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body over the limit of {self.limit / MB:g} MB (mlx serve --max-body-mb)"
        too_big = error(413, message)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await too_big(scope, receive, send)
            return
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise Problem(413, message)
            return message

        await self.app(scope, limited, send)


class Batcher:
    """Groups prepared items into ``Predictor.predict`` calls run by one worker thread."""

    def __init__(self, predictor: Predictor, max_batch: int, max_wait_ms: float) -> None:
        self.predictor = predictor
        self.max_batch = max(1, min(max_batch, predictor.max_batch or max_batch)) if predictor.batches else 1
        self.max_wait = max(0.0, max_wait_ms) / 1000 if self.max_batch > 1 else 0.0
        self.queue: asyncio.Queue[tuple[Any, asyncio.Future]] = asyncio.Queue()
        self.model_thread = ThreadPoolExecutor(1, thread_name_prefix="mlx-predict")
        self.sizes: Counter[int] = Counter()
        self.task: asyncio.Task | None = None

    def stats(self) -> dict[str, Any]:
        return {
            "max_batch": self.max_batch,
            "max_wait_ms": self.max_wait * 1000,
            "batches": sum(self.sizes.values()),
            "items": sum(k * v for k, v in self.sizes.items()),
            "sizes": {str(k): v for k, v in sorted(self.sizes.items())},
        }

    async def submit(self, item: Any) -> BaseModel:
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((item, fut))
        return await fut

    async def gather(self) -> list[tuple[Any, asyncio.Future]]:
        loop = asyncio.get_running_loop()
        batch = [await self.queue.get()]
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            if not self.queue.empty():
                batch.append(self.queue.get_nowait())
                continue
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), left))
            except TimeoutError:
                break
        return batch

    def _predict(self, items: list[Any]) -> list[BaseModel]:
        hold_point("serve:predict")  # tests hold a request in flight here (SIGTERM test)
        out = list(self.predictor.predict(items))
        if len(out) != len(items):
            raise RuntimeError(f"predict returned {len(out)} responses for {len(items)} inputs")
        return out

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self.gather()
            self.sizes[len(batch)] += 1
            try:
                results = await loop.run_in_executor(self.model_thread, self._predict, [b[0] for b in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), res in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(res)


def image_fields(model: type[BaseModel]) -> set[str]:
    props = model.model_json_schema().get("properties", {})
    return {k for k, v in props.items() if v.get("x-mlx-kind") == "image"}


def facts(predictor: Predictor, ctx: RunContext, batcher: Batcher | None) -> dict[str, Any]:
    """What ``/info`` says: the run, its metrics, the checked artifacts with their parity facts."""
    data = ctx.manifest.data
    metrics = {k: v for k, v in (data.get("metrics") or {}).items() if not isinstance(v, (list, dict))}
    keep = ("path", "sha256", "size", "kind", "format", "runtime")
    artifacts = [{k: a[k] for k in keep if k in a} for a in predictor.artifacts]
    parity = {a["path"]: {k: v for k, v in a.items() if k not in (*keep, "stage")} for a in predictor.artifacts}
    return {
        "plugin": ctx.plugin,
        "version": (data.get("versions") or {}).get(f"mlx-{ctx.plugin}") or data.get("plugin_version"),
        "run_id": data.get("id"),
        "run_dir": str(ctx.run_dir),
        "title": predictor.title,
        "metrics": metrics,
        "parity": parity,
        "artifacts": artifacts,
        "input_schema": predictor.request.model_json_schema(),
        "output_schema": predictor.response.model_json_schema(),
        "batches": predictor.batches,
        "batching": batcher.stats() if batcher else None,
        **predictor.facts,
    }


def install_error_handlers(app: FastAPI) -> None:
    """Every error, ours or FastAPI's, as ``{"error": "one message"}``."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return error(exc.status, exc.message)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, validation_message(exc))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return error(500, f"internal error: {type(exc).__name__}: {first}")


def create_app(predictor: Predictor, ctx: RunContext, opts: ServeOptions | None = None) -> FastAPI:
    """The FastAPI app serving ``predictor`` (the run of ``ctx``)."""
    opts = opts or ServeOptions()
    state: dict[str, Any] = {"batcher": None}
    images = image_fields(predictor.request)
    announce = os.environ.get("MLX_SERVE_ANNOUNCE")  # set by `mlx serve`: the line printed when ready

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        batcher = state["batcher"] = Batcher(predictor, opts.max_batch, opts.max_wait_ms)
        batcher.task = asyncio.create_task(batcher.run())
        if announce:
            print(announce, file=sys.stderr, flush=True)
        yield
        batcher.task.cancel()
        batcher.model_thread.shutdown(wait=True)
        if predictor.close:
            predictor.close()

    title = f"mlx serve: {ctx.plugin}"
    app = FastAPI(title=title, description=predictor.title or f"{ctx.plugin} run {ctx.run_dir.name}", lifespan=lifespan)

    install_error_handlers(app)

    @app.get("/health", summary="Liveness: 200 while the server serves")
    async def health() -> dict[str, str]:
        return {"status": "ok", "plugin": ctx.plugin}

    @app.get("/info", summary="The run served: plugin, version, run id, metrics, parity, schemas, artifact hashes")
    async def info() -> dict[str, Any]:
        return facts(predictor, ctx, state["batcher"])

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        from .serve_page import render

        return HTMLResponse(predictor.page or render(predictor, ctx.plugin))

    schema = predictor.request.model_json_schema()
    form_schema = {
        "type": "object",
        "properties": {
            k: ({"type": "string", "format": "binary"} if k in images else v)
            for k, v in schema.get("properties", {}).items()
        },
        "required": schema.get("required", []),
    }
    json_content: dict[str, Any] = {"schema": schema}
    if predictor.examples:
        json_content["examples"] = {f"example {i + 1}": {"value": e} for i, e in enumerate(predictor.examples)}

    @app.post(
        "/predict",
        response_model=predictor.response,
        summary=predictor.title or "Predict on one input",
        description="JSON (image fields in base64) or multipart/form-data (image fields as file uploads).",
        responses={
            c: {"description": d}
            for c, d in {
                400: "bad input",
                413: "body too large",
                415: "wrong content type",
                422: "missing, extra or invalid field",
            }.items()
        },  # fmt: skip
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": json_content, "multipart/form-data": {"schema": form_schema}},
            }
        },  # fmt: skip
    )
    async def predict(request: Request) -> Any:
        req = await parse(request, predictor.request, images)
        loop = asyncio.get_running_loop()
        try:
            item = await loop.run_in_executor(None, predictor.prepare, req)
        except DataError as exc:
            raise Problem(400, str(exc)) from None
        except MlxError as exc:
            raise Problem(422, str(exc)) from None
        try:
            return await state["batcher"].submit(item)
        except DataError as exc:
            raise Problem(400, str(exc)) from None

    return app


async def parse(request: Request, model: type[BaseModel], images: set[str]) -> BaseModel:
    """The request body as ``model``: JSON, or a multipart form whose files fill image fields."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        obj = json_object(await request.body())
    elif ctype == "multipart/form-data":
        try:
            form = await request.form()
        except Problem:
            raise
        except Exception as exc:  # noqa: BLE001 - python-multipart's parse errors
            raise Problem(400, f"unreadable multipart body: {exc}") from None
        obj = await form_object(form, images)
    else:
        shown = ctype or "none"
        raise Problem(415, f"content type {shown!r}; expected application/json or multipart/form-data")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise Problem(422, validation_message(exc)) from None


def json_object(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(400, f"request body is not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise Problem(400, "request body is empty; expected a JSON object")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Problem(400, f"request body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise Problem(422, f"request body is a JSON {type(obj).__name__}; expected an object")
    return obj


async def form_object(form: Any, images: set[str]) -> dict[str, Any]:
    """Form fields by name; an image field's file goes in as base64 (what its JSON form holds)."""
    import base64

    obj: dict[str, Any] = {}
    for key, value in form.multi_items():
        if hasattr(value, "read"):  # an UploadFile
            data = await value.read()
            if key in images:
                obj[key] = base64.b64encode(data)
                continue
            try:
                value = data.decode("utf-8")
            except UnicodeDecodeError:
                raise Problem(400, f"form field {key!r} is not valid UTF-8") from None
        elif key in images:
            raise Problem(422, f"form field {key!r} must be a file upload (an image)")
        obj[key] = value
    return obj


def serve(
    run_dir: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    fmt: str | None = None,
    overrides: list[str] | None = None,
    device: str = "cpu",
    opts: ServeOptions | None = None,
    log_level: str = "warning",
) -> None:
    """Check and load the run's predictor, then serve it until SIGTERM/Ctrl-C (requests in flight
    finish first). With ``workers > 1`` each uvicorn worker process loads its own predictor."""
    import signal
    import socket

    import uvicorn

    from .plugins import Registry
    from .serving import build_predictor

    opts = opts or ServeOptions()
    predictor, ctx = build_predictor(Registry(), run_dir, fmt=fmt, overrides=overrides or [], device=device)
    # uvicorn re-raises the signal that stopped it once it has shut down; the CLI's own SIGTERM
    # handler would turn that into "terminated": a served run that stops cleanly exits 0
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if workers > 1:  # uvicorn's supervisor binds the port and starts the worker processes
        if predictor.close:
            predictor.close()
        if port == 0:  # a free port, named in the ready line (the workers cannot share port 0)
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
                probe.bind((host, 0))
                port = probe.getsockname()[1]
        os.environ[SPEC_ENV] = json.dumps({"run_dir": str(run_dir), "fmt": fmt, "overrides": overrides or [],
                                           "device": device, "opts": opts.__dict__})  # fmt: skip
        os.environ["MLX_SERVE_ANNOUNCE"] = f"mlx serve: {ctx.plugin} run {ctx.run_dir.name} on http://{host}:{port}"
        uvicorn.run(f"{__name__}:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, timeout_graceful_shutdown=None)  # fmt: skip
        return
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = sock.getsockname()[1]
    os.environ["MLX_SERVE_ANNOUNCE"] = f"mlx serve: {ctx.plugin} run {ctx.run_dir.name} on http://{host}:{bound}"
    app = BodyLimitedApp(create_app(predictor, ctx, opts), int(opts.max_body_mb * MB))
    config = uvicorn.Config(app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=None)
    _server_class()(config).run(sockets=[sock])


SPEC_ENV = "MLX_SERVE_SPEC"


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, saying when a signal starts the graceful shutdown."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            if not self.should_exit:
                print("mlx serve: stopping; requests in flight finish first", file=sys.stderr, flush=True)
            super().handle_exit(sig, frame)

    return Server


def BodyLimitedApp(app: FastAPI, limit: int) -> FastAPI:
    app.add_middleware(BodyLimit, limit=limit)
    return app


def app_from_env() -> FastAPI:
    """The app of one uvicorn worker process (``--workers N``), from what the parent checked."""
    from .plugins import Registry
    from .serving import build_predictor

    spec = json.loads(os.environ[SPEC_ENV])
    opts = ServeOptions(**spec["opts"])
    predictor, ctx = build_predictor(Registry(), spec["run_dir"], fmt=spec["fmt"], overrides=spec["overrides"],
                                     device=spec["device"])  # fmt: skip
    return BodyLimitedApp(create_app(predictor, ctx, opts), int(opts.max_body_mb * MB))
