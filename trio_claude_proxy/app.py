"""The Quart-Trio application: routes call the converters and the stream; nothing more.

Every response carries a ``request-id`` header (the SDKs expose it as
``_request_id``), and every error, whatever raised it, leaves in Anthropic's
shape: ``{"type":"error","error":{"type":..,"message":..},"request_id":..}``.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from functools import partial
from typing import Any

import httpx
import trio
from quart import Response, g, request
from quart_trio import QuartTrio
from quart_trio.asgi import TrioASGIHTTPConnection
from werkzeug.exceptions import HTTPException

from . import tokens
from ._version import __version__
from .auth import backend_key
from .convert import (
    DEFAULT_DIALECT,
    Dialect,
    StreamTranslator,
    completion_to_message,
    to_chat_request,
    validate_request,
)
from .errors import InvalidRequest, NotFound, ProxyError, RequestTooLarge, UpstreamError
from .settings import Settings
from .streaming import StreamBody, open_event_stream
from .upstream import Backend

log = logging.getLogger(__name__)

# Counting a long prompt takes milliseconds; past this size do it in a thread
# (tiktoken releases the GIL) rather than stall every other stream.
_COUNT_IN_THREAD_CHARS = 32 * 1024
# Likewise translating a body this large (it may hold PDFs to extract).
_TRANSLATE_IN_THREAD_BYTES = 256 * 1024

_SSE_HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    # nginx buffers proxied responses unless told not to (nginx/nginx#1505).
    "x-accel-buffering": "no",
}


class _HTTPConnection(TrioASGIHTTPConnection):
    """Releases a stream's backend response if Quart never got to send its body."""

    async def _send_response(self, send: Any, response: Any) -> None:
        try:
            await super()._send_response(send, response)
        finally:
            body = getattr(response, "response", None)
            if isinstance(body, StreamBody):
                await body.discard()


def create_app(settings: Settings, *, http_client: httpx.AsyncClient | None = None) -> QuartTrio:
    """Build the app. Tests pass an ``httpx.AsyncClient`` with a mock transport."""
    app = QuartTrio(__name__)
    app.asgi_http_class = _HTTPConnection
    # Quart cuts every response at 60 s by default, silently (quart-trio.md 5.5).
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["BODY_TIMEOUT"] = max(60.0, settings.backend_timeout)
    backend = Backend(settings, http_client)
    dialect = DEFAULT_DIALECT

    @app.before_serving
    async def _load_tokenizer() -> None:
        await trio.to_thread.run_sync(tokens.encoding)

    @app.after_serving
    async def _close_backend() -> None:
        await backend.aclose()

    @app.before_request
    async def _start() -> None:
        g.request_id = "req_" + secrets.token_hex(12)
        g.started = time.monotonic()

    @app.after_request
    async def _finish(response: Response) -> Response:
        response.headers["request-id"] = g.request_id
        log.info(
            "%s %s %s %.0fms",
            request.method,
            request.path,
            response.status_code,
            (time.monotonic() - g.started) * 1000,
        )
        return response

    @app.errorhandler(ProxyError)
    async def _proxy_error(exc: ProxyError) -> Response:
        return _error_response(exc)

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status == 404:
            return _error_response(NotFound(f"Not found: {request.method} {request.path}"))
        if status == 413:
            limit = settings.max_body_bytes // (1024 * 1024)
            return _error_response(RequestTooLarge(f"Request exceeds the maximum size of {limit} MB"))
        error = InvalidRequest(exc.description or exc.name)
        return _error_response(error, status=status)

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error_response(UpstreamError("Internal proxy error"))

    @app.route("/health", methods=["GET"])
    async def health() -> Any:
        return {"status": "ok", "version": __version__}

    @app.route("/", methods=["GET", "HEAD"])
    @app.route("/api/hello", methods=["GET", "HEAD"])
    async def hello() -> Any:
        return {"status": "ok"}

    @app.route("/v1/messages/count_tokens", methods=["POST"])
    async def count_tokens() -> Any:
        raw, body = await _json_body()
        validate_request(body, count_tokens=True)
        chat = await _translate(raw, body, body["model"], dialect)
        return {"input_tokens": await _count(chat)}

    @app.route("/v1/messages", methods=["POST"])
    async def messages() -> Any:
        raw, body = await _json_body()
        validate_request(body)
        key = backend_key(settings.backend_key, request.headers)
        chat = await _translate(raw, body, body["model"], dialect)
        translator = StreamTranslator(
            model=body["model"],
            input_tokens=await _count(chat),
            stop_sequences=body.get("stop_sequences") or (),
            dialect=dialect,
        )
        if not body.get("stream"):
            completion = await backend.complete(chat, key)
            return completion_to_message(completion, translator)
        upstream = await backend.open_stream(chat, key)
        label = f"{g.request_id} model={body['model']}"
        stream = open_event_stream(
            upstream, translator, ping_interval=settings.ping_interval, label=label
        )
        return Response(StreamBody(upstream, stream), status=200, headers=_SSE_HEADERS)

    return app


async def _json_body() -> tuple[bytes, Any]:
    data = await request.get_data(cache=False)
    if not data:
        raise InvalidRequest("Request body is empty; expected a JSON object")
    try:
        return data, json.loads(data)
    except ValueError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from None


async def _translate(raw: bytes, body: dict[str, Any], model: str, dialect: Dialect) -> dict[str, Any]:
    """Translate; a large body (images, PDFs to extract) is done in a worker thread.

    Validation should have caught anything malformed; if translation still
    trips on a request, the client gets a 400 naming the problem (a 500 would
    make every client retry a request that can never succeed), and we log it.
    """
    convert = partial(to_chat_request, body, model=model, dialect=dialect)
    try:
        if len(raw) > _TRANSLATE_IN_THREAD_BYTES:
            return await trio.to_thread.run_sync(convert)
        return convert()
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        log.exception("could not translate a request that passed validation")
        raise InvalidRequest(f"Cannot translate this request: {type(exc).__name__}: {exc}") from None


async def _count(chat: dict[str, Any]) -> int:
    text, messages, images = tokens.request_text(chat)
    if len(text) > _COUNT_IN_THREAD_CHARS:
        return await trio.to_thread.run_sync(tokens.count_text_tokens, text, messages, images)
    return tokens.count_text_tokens(text, messages, images)


def _error_response(error: ProxyError, *, status: int | None = None) -> Response:
    request_id = getattr(g, "request_id", None)
    response = Response(
        json.dumps(error.body(request_id)),
        status=status or error.status,
        content_type="application/json",
        headers=error.response_headers(),
    )
    return response
