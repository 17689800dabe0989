"""A scripted OpenAI-compatible backend, as data.

A :class:`Reply` says what the backend answers: a status, headers, and a body
given as steps ``(delay_seconds, bytes)``. The same script runs two ways:

* in process, through ``httpx.MockTransport`` (:meth:`ScriptedBackend.client`);
  delays are ``trio.sleep`` so tests under ``autojump_clock`` run in virtual time;
* over real loopback HTTP (:func:`serve_backend`), for clients such as Claude
  Code that must reach a URL.

Every request the backend receives is recorded (parsed JSON and headers), so
tests can assert on what the proxy sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import hypercorn.trio
import trio
from hypercorn.config import Config

# ---- chunk builders -------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """One ``chat.completion.chunk`` with a single choice."""
    choice: dict[str, Any] = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m", "choices": [choice], **extra}


def text(content: str, finish: str | None = None) -> dict[str, Any]:
    return chunk({"content": content}, finish)


def tool_call(index: int, *, id: str | None = None, name: str | None = None, arguments: str = "") -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if id is not None:
        call["id"] = id
        call["type"] = "function"
    if name is not None:
        call["function"]["name"] = name
    return chunk({"tool_calls": [call]})


def usage(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                            "total_tokens": prompt + completion}
    if cached:
        body["prompt_tokens_details"] = {"cached_tokens": cached}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": body}


def sse(chunks: Iterable[dict[str, Any] | str], *, done: bool = True) -> bytes:
    """Frame chunks as ``data:`` events (a str is sent as raw event text)."""
    out = []
    for c in chunks:
        out.append(c if isinstance(c, str) else f"data: {json.dumps(c)}\n\n")
    if done:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


def completion(content: str | None = "", *, tool_calls: list[dict[str, Any]] | None = None,
               finish: str = "stop", usage_: dict[str, Any] | None = None,
               **message: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": content, **message}
    if tool_calls:
        msg["tool_calls"] = tool_calls
    body: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
                            "choices": [{"index": 0, "message": msg, "finish_reason": finish}]}
    if usage_ is not None:
        body["usage"] = usage_
    return body


# ---- replies ----------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    steps: list[tuple[float, bytes]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def stream(cls, body: bytes, *, delay: float = 0.0, pieces: int = 1) -> Reply:
        """An SSE reply, cut into ``pieces`` equal reads, ``delay`` apart."""
        size = max(1, -(-len(body) // pieces))
        steps = [(delay, body[i : i + size]) for i in range(0, len(body), size)]
        return cls(200, steps, {"content-type": "text/event-stream"})

    @classmethod
    def refused(cls) -> Reply:
        """No answer at all: the connection is refused (status 0 is the marker)."""
        return cls(0)

    @classmethod
    def json(cls, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, [(0.0, json.dumps(body).encode())],
                   {"content-type": "application/json", **(headers or {})})


Responder = Callable[[dict[str, Any]], Reply]


class ScriptedStream(httpx.AsyncByteStream):
    """A response body that plays its steps in (virtual) time and notes being closed.

    An iterator class rather than an async generator, so an abandoned stream
    leaves no suspended generator for trio to finalize after the test.
    """

    def __init__(self, steps: list[tuple[float, bytes]], backend: ScriptedBackend) -> None:
        self._steps = list(steps)
        self._backend = backend

    def __aiter__(self) -> ScriptedStream:
        return self

    async def __anext__(self) -> bytes:
        if not self._steps:
            raise StopAsyncIteration
        delay, data = self._steps.pop(0)
        if delay:
            await trio.sleep(delay)
        return data

    async def aclose(self) -> None:
        self._backend.closed_at.append(trio.current_time())


class ScriptedBackend:
    """Answers each chat completion with the next scripted reply (or asks a responder).

    Args:
        replies: played in order; or
        responder: called with each request's JSON to choose the reply.
        models: what ``GET /v1/models`` lists (None: 404, as some servers answer).
        routes: other paths (``/tokenize``...) and the JSON each answers.
    """

    def __init__(self, replies: Iterable[Reply] = (), responder: Responder | None = None,
                 models: list[dict[str, Any]] | None = None,
                 routes: dict[str, Callable[[dict[str, Any]], Any]] | None = None) -> None:
        self._replies = list(replies)
        self._responder = responder
        self.models = models
        self.routes = routes or {}
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.urls: list[str] = []
        self.other: list[tuple[str, str, dict[str, Any]]] = []  # (method, path, body) of the rest
        self.closed_at: list[float] = []

    def next_reply(self, body: dict[str, Any]) -> Reply:
        if self._responder is not None:
            return self._responder(body)
        if not self._replies:
            return Reply.json({"error": {"message": "script exhausted"}}, status=500)
        return self._replies.pop(0)

    def _answer(self, method: str, path: str, query: str, raw: bytes, headers: dict[str, str]) -> Reply:
        body = json.loads(raw) if raw else {}
        if path.endswith("/chat/completions"):
            self.requests.append(body)
            self.headers.append(headers)
            self.urls.append(path + (f"?{query}" if query else ""))
            return self.next_reply(body)
        self.other.append((method, path, body))
        if path.endswith("/models") and self.models is not None:
            return Reply.json({"object": "list", "data": self.models})
        for suffix, answer in self.routes.items():
            if path.endswith(suffix):
                return Reply.json(answer(body))
        return Reply.json({"error": "Not Found"}, status=404)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        reply = self._answer(request.method, request.url.path, request.url.query.decode(),
                             await request.aread(), {k.lower(): v for k, v in request.headers.items()})
        if reply.status == 0:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return httpx.Response(reply.status, headers=reply.headers, stream=ScriptedStream(reply.steps, self))

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    # -- as a real HTTP server --

    async def asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        raw = await read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        reply = self._answer(scope["method"], scope["path"], scope["query_string"].decode(), raw, headers)
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": [(k.encode(), v.encode()) for k, v in reply.headers.items()]})
        for delay, data in reply.steps:
            if delay:
                await trio.sleep(delay)
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def serve_lifespan(receive: Any, send: Any) -> None:
    """The ASGI lifespan protocol, for apps with nothing to start or stop."""
    while True:
        kind = (await receive())["type"]
        await send({"type": kind + ".complete"})
        if kind == "lifespan.shutdown":
            return


async def read_body(receive: Any) -> bytes:
    raw = b""
    while True:
        message = await receive()
        raw += message.get("body", b"")
        if not message.get("more_body"):
            return raw


def client_for(backends: dict[str, ScriptedBackend]) -> httpx.AsyncClient:
    """One client whose requests reach the scripted backend named by the URL's host."""

    async def handle(request: httpx.Request) -> httpx.Response:
        return await backends[request.url.host].handle(request)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


async def serve_backend(backend: ScriptedBackend, nursery: trio.Nursery) -> str:
    """Serve ``backend`` on loopback; returns its OpenAI base URL."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    binds = await nursery.start(partial(hypercorn.trio.serve, backend.asgi, config))
    return binds[0] + "/v1"
