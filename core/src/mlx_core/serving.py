"""What a plugin serves: the ``Predictor`` its ``mlx_serve`` hook returns, and how the core gets one.

Shared by ``mlx predict`` and ``mlx serve`` so the two never disagree: a plugin's predict entry
builds its predictor (``build_predictor`` below, or its own serve function) and runs the very
``prepare`` and ``predict`` the server runs. Torch-free and FastAPI-free: the HTTP app lives in
``mlx_core.serve_app`` (extra ``mlx-core[serve]``); this module needs only pydantic.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Base64Bytes, BaseModel, ConfigDict, Field

from .errors import DataError, PluginError, RunError, UsageError

if TYPE_CHECKING:
    from .context import RunContext
    from .plugins import Registry

#: a request or response field holding an image: base64 in JSON, a file upload in a form; the
#: served page shows a file picker for it in a request and the picture in a response
ImageBytes = Annotated[Base64Bytes, Field(json_schema_extra={"x-mlx-kind": "image"})]
#: decoded images larger than this many pixels are refused (PIL's own bomb limit is ~89 M)
MAX_PIXELS = 40_000_000


class Request(BaseModel):
    """Base of a plugin's request model: unknown fields are refused (a typo is an error, not a no-op)."""

    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    """Base of a plugin's response model."""


@dataclass
class Predictor:
    """A loaded exported model with typed input and output, returned by a plugin's ``mlx_serve``.

    request:  pydantic model of one input (subclass ``Request``; image fields typed ``ImageBytes``).
    response: pydantic model of one output.
    predict:  ``predict(items) -> responses``: one response per item, in order. ``items`` are what
              ``prepare`` returned; the server runs it in one thread, never concurrently.
    prepare:  per request, before batching: decode and check one request (raise ``DataError``
              for bad input: the server answers 400 for that request only). Default: identity.
    batches:  whether ``predict`` runs several items in one model call (the export takes a
              batch dimension); the server then groups requests arriving within ``--max-wait-ms``.
    max_batch: the most items one call may take (``None``: no limit of the export's own).
    title:    a line naming what it does, shown on the page and in /docs.
    page:     an HTML page of its own for ``/`` (the core's page, built from the schemas, otherwise).
    examples: request examples for the OpenAPI documentation.
    facts:    extra facts for ``/info`` (format, runtime, classes, ...).
    close:    called when the server stops.
    """

    request: type[BaseModel]
    response: type[BaseModel]
    predict: Callable[[list[Any]], Sequence[BaseModel]]
    prepare: Callable[[Any], Any] = lambda request: request
    batches: bool = False
    max_batch: int | None = None
    title: str = ""
    page: str | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    close: Callable[[], None] | None = None
    #: filled by the core: the run.json entries of the artifacts it checked (path, sha256, facts)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def run(self, requests: Sequence[BaseModel]) -> list[BaseModel]:
        """Prepare and predict ``requests`` in one call: what ``mlx predict`` does with the CLI's inputs."""
        with self._lock:
            return list(self.predict([self.prepare(r) for r in requests]))


def verify_artifact(ctx: RunContext, path: str | Path) -> Path:
    """``path`` (absolute or relative to the run) as recorded in run.json, after checking it is
    there and has the sha256 the run recorded: a missing, unrecorded or changed file is one
    ``RunError`` line. The entry goes into ``ctx.verified`` (``/info`` lists them)."""
    from .runs import sha256

    p = Path(path)
    full = p if p.is_absolute() else ctx.run_dir / p
    try:
        rel = str(full.resolve().relative_to(ctx.run_dir))
    except ValueError:
        rel = str(full.resolve())
    entry = next((a for a in ctx.manifest.data.get("artifacts", []) if a.get("path") == rel), None)
    if entry is None:
        raise RunError(f"artifact {rel} of run {ctx.run_dir} is not recorded in its run.json; refusing to load it")
    if not full.is_file():
        raise RunError(
            f"artifact {rel} of run {ctx.run_dir} is missing (run.json records sha256 {entry['sha256'][:12]}...)"
        )
    got = sha256(full)
    if got != entry["sha256"]:
        raise RunError(
            f"artifact {rel} of run {ctx.run_dir} changed since the run wrote it: sha256 {got[:12]}..., "
            f"run.json records {entry['sha256'][:12]}...; refusing to load it"
        )
    if entry not in ctx.verified:
        ctx.verified.append(entry)
    return full


def to_rgb(im: Any) -> Any:
    """A loaded ``PIL.Image`` as RGB; transparent pixels are composited on black, as a viewer
    would, rather than keeping whatever colour lies under alpha 0 (segmentation's reader does the
    same; it cannot import this while it supports mlx-core 0.1.4)."""
    from PIL import Image

    if im.mode == "RGBA" or (im.mode in ("LA", "P") and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGB", im.size)
        bg.paste(im, mask=im.getchannel("A"))
        return bg
    return im.convert("RGB")


def decode_image(data: bytes, what: str = "upload", max_pixels: int = MAX_PIXELS) -> Any:
    """An RGB ``PIL.Image`` from encoded bytes; not an image, an image over ``max_pixels`` (a
    decompression bomb: the header is read before any pixel) or a truncated file is a ``DataError``."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise DataError(f"{what} is empty; expected a JPEG or PNG image")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > max_pixels:
                raise DataError(
                    f"{what} is {im.width}x{im.height} pixels, over the limit of {max_pixels:,}; send a smaller image"
                )
            im.load()
            return to_rgb(im)
    except DataError:
        raise
    except Image.DecompressionBombError:
        raise DataError(
            f"{what} declares more pixels than the limit of {max_pixels:,} (a decompression bomb?)"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{what} is not a readable image ({type(exc).__name__}); expected a JPEG or PNG file") from None


def png_bytes(image: Any) -> bytes:
    """A ``PIL.Image`` encoded as PNG."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build_predictor(
    registry: Registry,
    run_dir: str | Path,
    *,
    fmt: str | None = None,
    overrides: Sequence[str] = (),
    device: str = "cpu",
    plugin: str | None = None,
) -> tuple[Predictor, RunContext]:
    """Load the predictor of the finished run in ``run_dir`` through its plugin's ``mlx_serve``:
    the run's config (with ``overrides``), its artifacts checked against run.json first."""
    from . import config as cfgmod
    from .context import RunContext
    from .runner import resolve_device
    from .runs import Manifest

    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file():
        raise UsageError(f"{run_dir} is not a run directory (no run.json); expected a folder under runs/<plugin>/")
    manifest = Manifest.load(run_dir)
    name = manifest.data["plugin"]
    if plugin is not None and plugin != name:
        raise RunError(f"{run_dir} is a run of plugin {name!r}, not {plugin!r}")
    rec = registry.get(name)
    if not rec.provides("serve"):
        raise UsageError(f"plugin {name!r} does not serve (its stage table has no 'serve' entry)")
    info = rec.info
    assert info is not None
    cfg, options = None, {}
    if info.config is not None:
        cfg, options = cfgmod.resolve(
            info.config, base=manifest.data.get("config", {}), overrides=overrides, options=registry.options_classes()
        )
    ctx = RunContext(
        plugin=name, stage="serve", target="serve", config=cfg, device=resolve_device(device, rec),
        run_dir=run_dir, manifest=manifest, resumed=True, option_values=options, registry=registry,
    )  # fmt: skip
    predictor = registry.call_stage("serve", ctx=ctx, format=fmt)
    if not isinstance(predictor, Predictor):
        raise PluginError(
            f"plugin {name!r}: mlx_serve returned {type(predictor).__name__}, expected mlx_core.Predictor"
        )
    if not ctx.verified:
        raise PluginError(f"plugin {name!r}: mlx_serve loaded no artifact through ctx.verify_artifact")
    predictor.artifacts = list(ctx.verified)
    return predictor, ctx
