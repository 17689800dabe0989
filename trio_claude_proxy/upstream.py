"""The backend client: the only module that imports httpx.

httpx failures and the backend's error responses are mapped to
:mod:`~trio_claude_proxy.errors` classes in exactly one place,
:func:`map_upstream_errors`, picking the most specific match.

Error handling: every call either returns what the backend sent with a 2xx
status, or raises :class:`~trio_claude_proxy.errors.ProxyError`. Error bodies
are read only up to :data:`MAX_ERROR_BODY` bytes.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import trio

from . import errors
from .errors import ProxyError, UpstreamError, UpstreamTimeout
from .settings import Settings

log = logging.getLogger(__name__)

MAX_ERROR_BODY = 64 * 1024
#: A non-streamed completion can be long (a model writing a file), but not unbounded.
MAX_COMPLETION_BODY = 64 * 1024 * 1024
#: How long closing a backend response may take once we give up on it.
CLOSE_TIMEOUT = 1.0

UpstreamResponse = httpx.Response


@contextmanager
def map_upstream_errors() -> Iterator[None]:
    """Turn httpx's transport failures into ProxyErrors (``raise ... from exc``)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        phase = {
            httpx.ConnectTimeout: "connecting to",
            httpx.ReadTimeout: "waiting for",
            httpx.WriteTimeout: "sending to",
            httpx.PoolTimeout: "waiting for a connection to",
        }.get(type(exc), "talking to")
        raise UpstreamTimeout(f"Timed out {phase} the backend") from exc
    except httpx.ConnectError as exc:
        raise UpstreamError(f"Cannot connect to the backend: {exc}") from exc
    except httpx.RemoteProtocolError as exc:
        raise UpstreamError(f"The backend closed the connection: {exc}") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"Backend request failed: {type(exc).__name__}: {exc}") from exc


class Backend:
    """One OpenAI-compatible backend.

    Args:
        settings: where it is and how long to wait for it.
        client: an ``httpx.AsyncClient`` to use (tests pass one with a
            ``MockTransport``); by default one is made and owned here.
    """

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self.url = settings.chat_completions_url
        # Models known to refuse max_tokens (insertion-ordered, bounded).
        self._wants_max_completion_tokens: dict[Any, None] = {}
        self._owns_client = client is None
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(
                settings.backend_timeout, connect=settings.connect_timeout, pool=settings.connect_timeout
            ),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            # Environment proxies (HTTP_PROXY) are for the user's browser, not
            # for a backend that usually sits on loopback.
            trust_env=False,
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    def _headers(self, api_key: str | None, *, stream: bool) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
        }
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return headers

    async def _post(self, payload: dict[str, Any], api_key: str | None, *, stream: bool) -> UpstreamResponse:
        request = self.client.build_request(
            "POST", self.url, content=_dumps(payload), headers=self._headers(api_key, stream=stream)
        )
        with map_upstream_errors():
            return await self.client.send(request, stream=True)

    async def _send(self, payload: dict[str, Any], api_key: str | None, *, stream: bool) -> UpstreamResponse:
        """POST; return a 2xx response (the caller closes it) or raise its ProxyError.

        OpenAI's reasoning models answer 400 "Unsupported parameter: 'max_tokens'
        ... use 'max_completion_tokens'". That request is retried once with the
        other field, and the model remembered so the next one goes right first.
        """
        model = payload.get("model")
        if model in self._wants_max_completion_tokens and "max_tokens" in payload:
            payload = _use_max_completion_tokens(payload)
        response = await self._post(payload, api_key, stream=stream)
        if response.is_success:
            return response
        try:
            error = await _error_from_response(response)
        finally:
            await aclose_response(response)
        if not (response.status_code == 400 and "max_tokens" in payload
                and _MAX_COMPLETION_TOKENS_HINT.search(error.message)):
            raise error
        self._wants_max_completion_tokens[model] = None
        while len(self._wants_max_completion_tokens) > _REMEMBERED_MODELS:
            del self._wants_max_completion_tokens[next(iter(self._wants_max_completion_tokens))]
        response = await self._post(_use_max_completion_tokens(payload), api_key, stream=stream)
        if response.is_success:
            return response
        try:
            raise await _error_from_response(response)
        finally:
            await aclose_response(response)

    async def open_stream(self, payload: dict[str, Any], api_key: str | None) -> UpstreamResponse:
        """POST a streaming request; return the response once its 2xx status is in.

        The caller owns the returned response and must :func:`aclose_response` it.
        """
        return await self._send(payload, api_key, stream=True)

    async def complete(self, payload: dict[str, Any], api_key: str | None) -> dict[str, Any]:
        """POST a non-streaming request; return the parsed completion."""
        response = await self._send(payload, api_key, stream=False)
        try:
            body = await read_bounded(response, MAX_COMPLETION_BODY)
        finally:
            await aclose_response(response)
        return parse_completion_body(body)


_MAX_COMPLETION_TOKENS_HINT = re.compile(r"max_tokens.*max_completion_tokens", re.S | re.I)
_REMEMBERED_MODELS = 256


def _use_max_completion_tokens(payload: dict[str, Any]) -> dict[str, Any]:
    renamed = dict(payload)
    renamed["max_completion_tokens"] = renamed.pop("max_tokens")
    return renamed


def parse_completion_body(body: bytes) -> dict[str, Any]:
    """A non-streamed completion. DeepSeek pads queued responses with blank lines."""
    try:
        value = json.loads(body)
    except ValueError:
        raise UpstreamError(
            f"Backend returned a response that is not JSON: {body[:200]!r}"
        ) from None
    if not isinstance(value, dict):
        raise UpstreamError("Backend returned JSON that is not an object")
    return value


async def read_bounded(response: UpstreamResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    with map_upstream_errors():
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise UpstreamError(f"Backend response larger than {limit} bytes")
            chunks.append(chunk)
    return b"".join(chunks)


async def _error_from_response(response: UpstreamResponse) -> ProxyError:
    try:
        raw = await read_bounded(response, MAX_ERROR_BODY)
    except ProxyError:
        raw = b""
    text = raw.decode("utf-8", errors="replace")
    body: Any
    try:
        body = json.loads(text)
    except ValueError:
        body = text
    error = errors.error_from_upstream(response.status_code, body, _lower(response.headers))
    log.info("backend answered %s: %s", response.status_code, error.message)
    return error


async def aclose_response(response: UpstreamResponse) -> None:
    """Close a backend response even while being cancelled, within a bounded time."""
    with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
        await response.aclose()


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
