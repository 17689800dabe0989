"""The backend client: every request to a backend is made here.

httpx's transport failures are mapped to :mod:`~trio_claude_proxy.errors`
classes in one place, :func:`map_upstream_errors`, picking the most specific
match; the backend's error responses in :func:`errors.error_from_upstream`.

Error handling: every call either returns what the backend sent with a 2xx
status, or raises :class:`~trio_claude_proxy.errors.ProxyError`. Completion
error bodies are read only up to :data:`MAX_ERROR_BODY` bytes; metadata calls
are bounded by :data:`METADATA_TIMEOUT` instead.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx
import trio

from . import errors
from .backends import BackendConfig, redact_url
from .catalog import ModelInfo, context_from_props, parse_models
from .errors import ProxyError, UpstreamError, UpstreamTimeout
from .settings import Settings

log = logging.getLogger(__name__)

MAX_ERROR_BODY = 64 * 1024
#: Model lists and token counts are small and must be quick, or not at all.
METADATA_TIMEOUT = 5.0
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
    """One OpenAI-compatible backend, over a shared ``httpx.AsyncClient``.

    Args:
        config: where it is, its key, preset and extra headers.
        client: the client to use (tests pass one with a ``MockTransport``).
    """

    def __init__(self, config: BackendConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self.client = client
        # Models known to refuse max_tokens (insertion-ordered, bounded).
        self._wants_max_completion_tokens: dict[Any, None] = {}

    def _headers(self, api_key: str | None, *, stream: bool) -> dict[str, str]:
        headers = {
            **self.config.headers,
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
        }
        if api_key:
            if self.config.auth_header == "api-key":
                headers["api-key"] = api_key
            else:
                headers["authorization"] = f"Bearer {api_key}"
        return headers

    async def _post(self, payload: dict[str, Any], api_key: str | None, *, stream: bool) -> UpstreamResponse:
        url = self.config.chat_completions_url(payload.get("model", ""))
        request = self.client.build_request(
            "POST", url, content=_dumps(payload), headers=self._headers(api_key, stream=stream)
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
        error = await _close_with_error(response)
        if not (response.status_code == 400 and "max_tokens" in payload
                and _MAX_COMPLETION_TOKENS_HINT.search(error.message)):
            raise error
        response = await self._post(_use_max_completion_tokens(payload), api_key, stream=stream)
        if response.is_success:
            # Remembered only once the other field has worked.
            self._wants_max_completion_tokens[model] = None
            while len(self._wants_max_completion_tokens) > _REMEMBERED_MODELS:
                del self._wants_max_completion_tokens[next(iter(self._wants_max_completion_tokens))]
            return response
        raise await _close_with_error(response)

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

    async def _metadata(self, url: str, api_key: str | None, body: dict[str, Any] | None = None) -> Any:
        """GET (or POST ``body`` to) a small JSON endpoint: model lists, tokenizers.

        :data:`METADATA_TIMEOUT` bounds the whole call, not each read: a
        tokenizer that trickles bytes must not slow every request.
        """
        headers = self._headers(api_key, stream=False)
        with trio.move_on_after(METADATA_TIMEOUT) as deadline, map_upstream_errors():
            if body is None:
                response = await self.client.get(url, headers=headers)
            else:
                response = await self.client.post(url, content=_dumps(body), headers=headers)
        if deadline.cancelled_caught:
            raise UpstreamTimeout(f"Timed out waiting for {redact_url(url)}")
        if not response.is_success:
            raise errors.error_from_upstream(response.status_code, response.text)
        try:
            return response.json()
        except ValueError:
            raise UpstreamError(f"{redact_url(url)} did not return JSON") from None

    async def list_models(self) -> list[ModelInfo]:
        """``GET /v1/models`` (and llama.cpp's ``/props`` for the real context)."""
        models = parse_models(self.config.name, await self._metadata(self.config.models_url, self.config.key))
        if self.config.preset == "llamacpp":
            n_ctx = context_from_props(await self._metadata(f"{self.config.root_url}/props", self.config.key))
            if n_ctx:
                models = [replace(m, context_length=n_ctx) for m in models]
        return models

    async def count_tokens(self, chat: dict[str, Any], api_key: str | None) -> int | None:
        """The backend's own prompt count for a translated request, if it has an endpoint.

        vLLM: ``POST /tokenize`` in chat form (template included). llama.cpp:
        ``/apply-template`` then ``/tokenize``. llama-cpp-python:
        ``/extras/tokenize/count`` of the text (its template is not applied, so
        the framing is estimated; tools count only under a tool_choice, as its
        chat handler ignores them otherwise).
        """
        kind = self.config.tokenizer
        root = self.config.root_url
        if kind == "vllm":
            body: dict[str, Any] = {"model": chat["model"], "messages": chat["messages"],
                                    "add_generation_prompt": True}
            if chat.get("tools"):
                body["tools"] = chat["tools"]
            result = await self._metadata(f"{root}/tokenize", api_key, body)
            return _int_field(result, "count")
        if kind == "llamacpp":
            templated = await self._metadata(f"{root}/apply-template", api_key, {"messages": chat["messages"]})
            prompt = templated.get("prompt") if isinstance(templated, dict) else None
            if not isinstance(prompt, str):
                return None
            result = await self._metadata(f"{root}/tokenize", api_key, {"content": prompt, "add_special": True})
            tokens = result.get("tokens") if isinstance(result, dict) else None
            return len(tokens) if isinstance(tokens, list) else None
        if kind == "llama-cpp-python":
            from .tokens import framing_tokens, request_text

            if chat.get("tool_choice") in (None, "none"):
                # It leaves tools out of the prompt unless a tool_choice forces one.
                chat = {k: v for k, v in chat.items() if k != "tools"}
            text, messages, images = request_text(chat)
            result = await self._metadata(f"{root}/extras/tokenize/count", api_key, {"input": text})
            count = _int_field(result, "count")
            return None if count is None else count + framing_tokens(messages, images)
        return None


def _int_field(body: Any, key: str) -> int | None:
    value = body.get(key) if isinstance(body, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def make_client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.backend_timeout, connect=settings.connect_timeout,
                              pool=settings.connect_timeout),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        # Environment proxies (HTTP_PROXY) are for the user's browser, not for
        # a backend that usually sits on loopback.
        trust_env=False,
    )


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


async def _close_with_error(response: UpstreamResponse) -> ProxyError:
    """Read a backend's error response (bounded), close it, and map it."""
    try:
        raw = await read_bounded(response, MAX_ERROR_BODY)
    except ProxyError:
        raw = b""
    finally:
        await aclose_response(response)
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
    """Compact UTF-8 JSON; a lone surrogate from the client (valid JSON, not
    valid UTF-8) falls back to ASCII escapes and lets the backend judge it."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(payload, separators=(",", ":")).encode()
