"""The Quart-Trio application: routes call the pipeline and the stream; nothing more.

Every response carries a ``request-id`` header (the SDKs expose it as
``_request_id``), and every error, whatever raised it, leaves in Anthropic's
shape: ``{"type":"error","error":{"type":..,"message":..},"request_id":..}``.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import trio
from quart import Response, g, request
from quart_trio import QuartTrio
from quart_trio.asgi import TrioASGIHTTPConnection
from werkzeug.exceptions import HTTPException

from . import tokens
from ._version import __version__
from .catalog import ModelInfo
from .convert import completion_to_message, validate_request
from .errors import InvalidRequest, NotFound, ProxyError, RequestTooLarge, UpstreamError
from .proxy import Proxy
from .routing import mapped_name
from .settings import Settings
from .streaming import ShutdownNotice, StreamBody, open_event_stream

log = logging.getLogger(__name__)

#: The first model-list refresh happens before serving, but never delays it longer.
STARTUP_DISCOVERY_TIMEOUT = 3.0
#: The final (shielded) write of a response: a few bytes, unless the client
#: stopped reading.
FINAL_WRITE_TIMEOUT = 10.0

_SSE_HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    # nginx buffers proxied responses unless told not to (nginx/nginx#1505).
    "x-accel-buffering": "no",
}


class _HTTPConnection(TrioASGIHTTPConnection):
    """quart-trio's HTTP connection, with two repairs.

    * The last write of every response is shielded. Hypercorn answers that
      write with ``http.disconnect``, on which quart-trio cancels the request,
      while Hypercorn is still inside the same write restarting the
      connection's keep-alive timer; cancelled there, the timer never runs
      again, idle connections are never closed, and shutdown waits its full
      grace period for them.
    * A stream's backend response is released if Quart never got to send the
      body (the client left between our handler returning and the first write).
    """

    async def _send_response(self, send: Any, response: Any) -> None:
        async def send_last_shielded(message: Any) -> None:
            if message.get("type") == "http.response.body" and not message.get("more_body", False):
                with trio.CancelScope(shield=True), trio.move_on_after(FINAL_WRITE_TIMEOUT):
                    await send(message)
            else:
                await send(message)

        try:
            await super()._send_response(send_last_shielded, response)
        finally:
            body = getattr(response, "response", None)
            if isinstance(body, StreamBody):
                await body.discard()


def create_app(
    settings: Settings,
    *,
    http_client: httpx.AsyncClient | None = None,
    shutdown: ShutdownNotice | None = None,
) -> QuartTrio:
    """Build the app. Tests pass an ``httpx.AsyncClient`` with a mock transport;
    the server passes the notice it gives when a graceful shutdown begins."""
    app = QuartTrio(__name__)
    app.asgi_http_class = _HTTPConnection
    # Quart cuts every response at 60 s by default, silently (quart-trio.md 5.5).
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["BODY_TIMEOUT"] = max(60.0, settings.backend_timeout)
    proxy = Proxy(settings, http_client)
    app.extensions["proxy"] = proxy
    background = trio.CancelScope()

    @app.before_serving
    async def _start() -> None:
        await trio.to_thread.run_sync(tokens.encoding)
        with trio.move_on_after(STARTUP_DISCOVERY_TIMEOUT):
            await proxy.refresh_models()

        async def refresh() -> None:
            with background:
                await trio.sleep(settings.models_refresh)
                await proxy.refresh_models_forever()

        app.nursery.start_soon(refresh)

    @app.after_serving
    async def _stop() -> None:
        background.cancel()
        await proxy.aclose()

    @app.before_request
    async def _begin() -> None:
        g.request_id = "req_" + secrets.token_hex(12)
        g.started = time.monotonic()

    @app.after_request
    async def _end(response: Response) -> Response:
        response.headers["request-id"] = g.request_id
        log.info("%s %s %s %.0fms", request.method, request.path, response.status_code,
                 (time.monotonic() - g.started) * 1000)
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
        return _error_response(InvalidRequest(exc.description or exc.name), status=status)

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

    @app.route("/v1/models", methods=["GET"])
    async def list_models() -> Any:
        proxy.check_client(request.headers)
        return _page(_model_entries(proxy), request.args)

    @app.route("/v1/models/<path:model_id>", methods=["GET"])
    async def get_model(model_id: str) -> Any:
        proxy.check_client(request.headers)
        for entry in _model_entries(proxy):
            if entry["id"] == model_id:
                return entry
        raise NotFound(f"model: {model_id} not found")

    @app.route("/v1/messages/count_tokens", methods=["POST"])
    async def count_tokens() -> Any:
        proxy.check_client(request.headers)
        raw, body = await _json_body()
        validate_request(body, count_tokens=True)
        prepared = await proxy.prepare(body, len(raw), request.headers)
        return {"input_tokens": prepared.input_tokens}

    @app.route("/v1/messages", methods=["POST"])
    async def messages() -> Any:
        proxy.check_client(request.headers)
        raw, body = await _json_body()
        validate_request(body)
        prepared = await proxy.prepare(body, len(raw), request.headers)
        proxy.fit_max_tokens(prepared)
        if not body.get("stream"):
            completion, used = await proxy.complete(prepared, request.headers)
            return completion_to_message(completion, proxy.translator(used))
        upstream, used = await proxy.open_stream(prepared, request.headers)
        stream = open_event_stream(
            upstream,
            proxy.translator(used),
            ping_interval=settings.ping_interval,
            label=f"{g.request_id} model={body['model']} backend={used.route.backend.name}",
            on_usage=lambda usage: proxy.learn(used, usage),
            shutdown=shutdown,
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


def _error_response(error: ProxyError, *, status: int | None = None) -> Response:
    return Response(
        json.dumps(error.body(getattr(g, "request_id", None))),
        status=status or error.status,
        content_type="application/json",
        headers=error.response_headers(),
    )


# ---- /v1/models in Anthropic's shape -------------------------------------------------------

_EPOCH = "1970-01-01T00:00:00Z"


def _model_entry(model_id: str, info: ModelInfo | None, display: str | None = None) -> dict[str, Any]:
    created = _EPOCH
    if info is not None and info.created:
        stamp = info.created / 1000 if info.created > 10**11 else info.created  # some report ms
        try:
            created = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, OSError, ValueError):
            pass
    entry: dict[str, Any] = {"type": "model", "id": model_id, "display_name": display or model_id,
                             "created_at": created}
    if info is not None and info.context_length:
        entry["max_input_tokens"] = info.context_length
    return entry


def _model_entries(proxy: Proxy) -> list[dict[str, Any]]:
    """Aliases from ``[models]`` first (Claude Code's picker shows only ids with
    "claude" in them, so an alias is how a backend model gets there), then
    every model the backends serve."""
    entries: dict[str, dict[str, Any]] = {}
    for alias in proxy.settings.model_map:
        model, backend = mapped_name(alias, proxy.settings)
        info = proxy.catalog.find(model, [backend] if backend else list(proxy.backends))
        entries[alias] = _model_entry(alias, info, f"{alias} ({model})")
    for info in proxy.catalog.models():
        entries.setdefault(info.id, _model_entry(info.id, info))
    return list(entries.values())


def _page(entries: list[dict[str, Any]], args: Any) -> dict[str, Any]:
    """Anthropic pagination: ``limit`` (1-1000, default 20), ``after_id``, ``before_id``."""
    try:
        limit = int(args.get("limit", 20))
    except ValueError:
        raise InvalidRequest("limit: Input should be a valid integer") from None
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit: Input should be between 1 and 1000")
    ids = [e["id"] for e in entries]
    after, before = args.get("after_id"), args.get("before_id")
    if after is not None:
        start = ids.index(after) + 1 if after in ids else len(ids)
        window = entries[start : start + limit]
        has_more = start + limit < len(entries)
    elif before is not None:
        end = ids.index(before) if before in ids else 0
        window = entries[max(0, end - limit) : end]
        has_more = end - limit > 0
    else:
        window = entries[:limit]
        has_more = limit < len(entries)
    return {
        "data": window,
        "has_more": has_more,
        "first_id": window[0]["id"] if window else None,
        "last_id": window[-1]["id"] if window else None,
    }
