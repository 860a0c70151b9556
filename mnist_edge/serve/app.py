"""The ASGI app: the Open Inference Protocol's REST endpoints, ``POST /predict`` and the page.

Every request that carries a body goes the same way: the body is read up to a limit (a declared
Content-Length past it is refused before a byte is read, a streamed body as soon as it passes it),
then decoding, inference and encoding run together in a small thread pool, so the event loop only
moves bytes. One :class:`~mnist_edge.runtime.Classifier` serves every thread: it is thread-safe and
keeps one engine interpreter per thread. Whatever a client sends, the answer is JSON: 4xx with
``{"error": ...}`` saying what was wrong, never a 500 for bad input.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import time
import zlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mnist_edge import __version__
from mnist_edge.errors import MnistEdgeError
from mnist_edge.serve import inputs, oip
from mnist_edge.serve.oip import ApiError

__all__ = ["create_app"]

log = logging.getLogger("mnist_edge.serve")

_JSON = "application/json"
_BINARY = "application/octet-stream"
_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
#: Bodies held in memory at once, in units of the body limit: past it, requests wait their turn.
BODIES_IN_MEMORY = 8
#: A body that takes longer than this to arrive is a 408 (a slow sender holds memory).
BODY_SECONDS = 60.0


def create_app(
    classifier: Any,
    *,
    name: str,
    threads: int,
    max_body: int,
) -> Starlette:
    """The app serving ``classifier`` (a loaded :class:`~mnist_edge.runtime.Classifier`) as ``name``.

    ``threads`` run decoding and inference; ``max_body`` bounds a request body in bytes (after
    any Content-Encoding is undone, too).
    """
    api = _Api(classifier, name=name, threads=threads, max_body=max_body)
    routes = [
        Route("/", api.page, methods=["GET"]),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/predict", api.predict, methods=["POST"]),
        Route("/v2", api.server_metadata, methods=["GET"]),
        Route("/v2/health/live", api.live, methods=["GET"]),
        Route("/v2/health/ready", api.ready, methods=["GET"]),
        Route("/v2/models/{model}", api.model_metadata, methods=["GET"]),
        Route("/v2/models/{model}/ready", api.model_ready, methods=["GET"]),
        Route("/v2/models/{model}/infer", api.infer, methods=["POST"]),
    ]
    handlers: dict[Any, Callable[..., Any]] = {
        ApiError: _api_error,
        HTTPException: _http_error,
        Exception: _server_error,
    }
    return Starlette(routes=routes, exception_handlers=handlers, lifespan=api.lifespan)


class _Api:
    def __init__(self, classifier: Any, *, name: str, threads: int, max_body: int) -> None:
        if threads < 1:
            raise MnistEdgeError(f"threads must be at least 1, got {threads}")
        if max_body < 1:
            raise MnistEdgeError(f"the body limit must be at least 1 byte, got {max_body}")
        self.classifier = classifier
        self.name = name
        self.max_body = max_body
        self.budget = MemoryBudget(BODIES_IN_MEMORY * max_body)
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mnist-edge-infer")
        self.page_body, self.page_headers = _page()
        platform = {"tflite": "tflite_tflite", "onnx": "onnxruntime_onnx"}.get(classifier.format, "keras")
        self.metadata = orjson.dumps(oip.model_metadata(name, platform))

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        yield
        # The server has answered every request in flight; let the pool's last tasks finish.
        self.executor.shutdown(wait=True)

    # ------------------------------------------------------------------ small endpoints

    async def page(self, _request: Request) -> Response:
        return Response(self.page_body, media_type="text/html; charset=utf-8", headers=self.page_headers)

    async def healthz(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": self.name})

    async def server_metadata(self, _request: Request) -> Response:
        extensions = ["binary_tensor_data"]
        return JSONResponse({"name": "mnist-edge", "version": __version__, "extensions": extensions})

    async def live(self, _request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, _request: Request) -> Response:
        return JSONResponse({"ready": True})

    async def model_metadata(self, request: Request) -> Response:
        self._check_model(request)
        return Response(self.metadata, media_type=_JSON)

    async def model_ready(self, request: Request) -> Response:
        self._check_model(request)
        return JSONResponse({"name": self.name, "ready": True})

    def _check_model(self, request: Request) -> None:
        model = request.path_params["model"]
        if model != self.name:
            raise ApiError(404, f"unknown model {model[:100]!r}: this server serves {self.name!r}")

    # ------------------------------------------------------------------ inference

    async def predict(self, request: Request) -> Response:
        started = time.perf_counter()
        kind = _media_type(request)
        if kind not in (*inputs.PICTURE_TYPES, _JSON):
            accepted = ", ".join((*inputs.PICTURE_TYPES, _JSON))
            raise ApiError(415, f"POST /predict takes {accepted}, not {kind or 'nothing'!r}")
        invert = _flag(request.query_params.get("invert"), "invert")
        async with self._body(request) as body:
            payload = await self._offload(self._predict, body, kind, invert)
        return _timed(Response(payload, media_type=_JSON), started)

    def _predict(self, body: bytes, kind: str, invert: bool | None) -> bytes:
        digit = inputs.pixels_digit(body) if kind == _JSON else inputs.picture_digit(body, invert)
        probabilities = self.classifier.predict_proba(digit[np.newaxis])[0]
        answer = inputs.answer(digit, probabilities, self.classifier.class_names)
        return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)

    async def infer(self, request: Request) -> Response:
        started = time.perf_counter()
        self._check_model(request)
        kind = _media_type(request)
        # tritonclient sends no Content-Type at all; anything declared must be JSON or binary.
        if kind not in ("", _JSON, _BINARY):
            raise ApiError(415, f"POST infer takes {_JSON} (or {_BINARY} with binary tensors), not {kind!r}")
        header_length = request.headers.get("inference-header-content-length")
        async with self._body(request) as body:
            payload, json_length = await self._offload(self._infer, body, header_length)
        response = Response(payload, media_type=_JSON if json_length is None else _BINARY)
        if json_length is not None:
            response.headers["Inference-Header-Content-Length"] = str(json_length)
        return _timed(response, started)

    def _infer(self, body: bytes, header_length: str | None) -> tuple[bytes, int | None]:
        request = oip.parse_request(body, header_length)
        probabilities = self.classifier.predict_proba(request.pixels)  # one engine call per batch
        return oip.encode_response(request, self.name, probabilities)

    async def _offload(self, work: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, work, *args)
        except MnistEdgeError as exc:  # InputError: a picture without a digit, pixels out of range
            raise ApiError(422, str(exc)) from None

    @asynccontextmanager
    async def _body(self, request: Request) -> AsyncIterator[bytes]:
        """The body, refused with 413 as soon as it is known to pass the limit. Its size (the
        limit when undeclared) is taken from the memory budget until the request is done."""
        declared = request.headers.get("content-length")
        size = int(declared) if declared is not None and declared.isdigit() else None
        if size is not None and size > self.max_body:
            limit = self.max_body
            raise ApiError(413, f"the body is {size:,} bytes, over this server's limit of {limit:,}")
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity" and encoding not in _ENCODINGS:
            accepted = "gzip, deflate or none"
            raise ApiError(415, f"Content-Encoding {encoding[:40]!r} is not accepted: send {accepted}")
        # A compressed body may inflate up to the limit: it reserves that much more.
        reserved = (self.max_body if size is None else size) + (
            self.max_body if encoding != "identity" else 0
        )
        async with self.budget.reserve(reserved):
            try:
                body = await asyncio.wait_for(self._read(request), BODY_SECONDS)
            except asyncio.TimeoutError:
                raise ApiError(408, f"the body did not arrive within {BODY_SECONDS:g} s") from None
            if encoding != "identity":
                body = await self._offload(_inflate, body, _ENCODINGS[encoding], self.max_body)
            yield body

    async def _read(self, request: Request) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_body:
                    raise ApiError(413, f"the body passes this server's limit of {self.max_body:,} bytes")
                chunks.append(chunk)
        except ClientDisconnect:  # nobody to answer; not a server error either
            raise ApiError(400, "the client went away before its body arrived") from None
        return b"".join(chunks)


class MemoryBudget:
    """Bytes that request bodies may hold at once. A request reserves its whole size before it
    reads a byte, so waiting requests hold nothing and can never block each other half-way."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._changed: asyncio.Condition | None = None  # made in the server's event loop

    @asynccontextmanager
    async def reserve(self, size: int) -> AsyncIterator[None]:
        size = min(size, self.total)
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with self._changed:
            await self._changed.wait_for(lambda: self.free >= size)
            self.free -= size
        try:
            yield
        finally:
            async with self._changed:
                self.free += size
                self._changed.notify_all()


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    """Undo gzip/deflate without ever holding more than ``limit`` bytes: a bomb is a 413."""
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ApiError(400, f"the body is not valid compressed data: {exc}") from None
    if len(data) > limit:
        raise ApiError(413, f"the body inflates past this server's limit of {limit:,} bytes")
    if not inflater.eof:
        raise ApiError(400, "the compressed body is truncated")
    return data


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _flag(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    answer = {"true": True, "1": True, "false": False, "0": False}.get(value.lower())
    if answer is None:
        raise ApiError(400, f"?{name}= takes true or false, not {value[:20]!r}")
    return answer


def _timed(response: Response, started: float) -> Response:
    # Server-Timing (a W3C header browsers show in their network panel): the time from the
    # request's headers to its answer, body reading included.
    response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.3f}"
    return response


# --------------------------------------------------------------------------- errors


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse({"error": exc.message}, status_code=exc.status)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)


# --------------------------------------------------------------------------- the page


def _page() -> tuple[bytes, dict[str, str]]:
    """The page's bytes and its headers: a Content-Security-Policy that lets its own inline script
    and style run (by hash) and nothing from anywhere else."""
    html = (resources.files("mnist_edge.serve") / "static" / "index.html").read_text(encoding="utf-8")

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
        return " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks
        )

    policy = (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "img-src 'self' data: blob:; connect-src 'self'; form-action 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )
    headers = {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }
    return html.encode(), headers
