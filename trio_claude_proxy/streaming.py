"""The per-request stream: one nursery owning the relay and the keep-alive pinger.

Shape (quart-trio.md 5.2): Quart enters the response body as an async context
manager in the task that sends the response, so the nursery lives in
:func:`open_event_stream`, an ``@asynccontextmanager`` (a ``yield`` inside a
nursery is forbidden in a plain async generator, trio docs "Cancel scopes and
nurseries"). Tasks and their shutdown:

* the relay reads the backend, feeds the pure translator, and sends SSE bytes
  down a zero-capacity channel, so a slow client slows the backend read rather
  than filling a buffer;
* the pinger, in the relay's inner nursery, sends ``event: ping`` whenever
  nothing was written for ``ping_interval`` seconds; the relay cancels it when
  the backend is done, and closing both channel ends finishes the response;
* a client disconnect makes quart-trio cancel the request, which cancels this
  nursery, and the backend response is closed within a second.

Once the 200 is committed errors cannot change the status, so the relay turns
every failure into an ``event: error`` with Anthropic's error body and ends
the stream normally; no exception escapes to Quart.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from types import TracebackType
from typing import Any

import trio
from quart.wrappers.response import ResponseBody

from .convert import StreamTranslator
from .convert.response import completion_as_chunk
from .errors import Overloaded, ProxyError, UpstreamError
from .sse import PING, ServerSentEvent, SSEDecoder, SSEError, encode_event, encode_events
from .upstream import (
    MAX_COMPLETION_BODY,
    UpstreamResponse,
    aclose_response,
    map_upstream_errors,
    parse_completion_body,
    read_bounded,
)

log = logging.getLogger(__name__)

#: How long to wait for the usage chunk and [DONE] after finish_reason.
AFTER_FINISH_GRACE = 5.0
#: A client that takes no chunk for this long has stopped reading.
WRITE_TIMEOUT = 120.0
#: A stream cut by shutdown says so this long before the hard deadline.
SHUTDOWN_MARGIN = 1.0


class StreamBody(ResponseBody):
    """Adapts :func:`open_event_stream` to Quart's response-body protocol.

    If Quart never enters the body (the client left between our handler
    returning and the first write), :meth:`discard` releases the backend.
    """

    def __init__(self, upstream: UpstreamResponse, cm: AbstractAsyncContextManager[Any]) -> None:
        self._upstream = upstream
        self._cm = cm
        self._entered = False

    async def __aenter__(self) -> Any:
        self._entered = True
        return await self._cm.__aenter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        # Pure delegation: flake8-async's ASYNC102 (unshielded await in __aexit__)
        # is a false positive here.
        return await self._cm.__aexit__(exc_type, exc, tb)

    async def discard(self) -> None:
        if not self._entered:
            await aclose_response(self._upstream)


class ClientStalled(Exception):
    """The client has not taken a chunk for :data:`WRITE_TIMEOUT` seconds."""


async def deliver(send: trio.MemorySendChannel[bytes], data: bytes) -> None:
    """Hand ``data`` to the response writer, or raise :class:`ClientStalled`.

    A client that keeps its socket open but stops reading would otherwise
    hold the relay, and with it the backend connection, forever.
    """
    with trio.move_on_after(WRITE_TIMEOUT) as scope:
        await send.send(data)
    if scope.cancelled_caught:
        raise ClientStalled


class KeepAlive:
    """Sends a ping once the client has heard nothing for ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.due = trio.current_time() + interval

    def touch(self) -> None:
        self.due = trio.current_time() + self.interval

    async def run(self, send: trio.MemorySendChannel[bytes]) -> None:
        async with send:
            while True:
                await trio.sleep_until(self.due)
                if trio.current_time() >= self.due:
                    try:
                        await deliver(send, PING)
                    except ClientStalled:
                        return  # the relay notices too, and ends the stream
                    self.touch()


class ShutdownNotice:
    """Tells running streams when a graceful shutdown will cut them off.

    Hypercorn gives in-flight requests ``graceful_timeout`` seconds, then
    cancels them without a word; the client would see a truncated stream. A
    relay still running just before that deadline ends its stream with an
    ``overloaded_error`` event instead, which clients retry (elsewhere, behind
    a load balancer).
    """

    def __init__(self) -> None:
        self.started = trio.Event()
        self.deadline = math.inf

    def begin(self, grace: float) -> None:
        self.deadline = trio.current_time() + grace
        self.started.set()

    async def wait_until_cut(self) -> None:
        await self.started.wait()
        margin = min(SHUTDOWN_MARGIN, (self.deadline - trio.current_time()) / 2)
        await trio.sleep_until(self.deadline - margin)


@asynccontextmanager
async def open_event_stream(
    upstream: UpstreamResponse,
    translator: StreamTranslator,
    *,
    ping_interval: float,
    label: str = "",
    on_usage: Callable[[dict[str, Any] | None], None] | None = None,
    shutdown: ShutdownNotice | None = None,
) -> AsyncIterator[trio.MemoryReceiveChannel[bytes]]:
    """Relay ``upstream`` as Anthropic SSE; ``on_usage`` gets the backend's usage
    once the stream completed normally."""
    send, receive = trio.open_memory_channel[bytes](0)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_relay, upstream, translator, send, ping_interval, label, shutdown)
            async with receive:
                yield receive
            nursery.cancel_scope.cancel(reason="client stopped reading")
    finally:
        await aclose_response(upstream)
    if on_usage is not None and translator.state == "DONE":
        on_usage(translator.usage)


async def _relay(
    upstream: UpstreamResponse,
    translator: StreamTranslator,
    send: trio.MemorySendChannel[bytes],
    ping_interval: float,
    label: str,
    shutdown: ShutdownNotice | None,
) -> None:
    started = time.monotonic()
    outcome = "ok"
    keepalive = KeepAlive(ping_interval)
    try:
        async with send, trio.open_nursery() as inner:
            inner.start_soon(keepalive.run, send.clone())
            try:
                outcome = await _run_stream(upstream, translator, send, keepalive, shutdown, inner)
            except ClientStalled:
                outcome = f"abandoned: the client read nothing for {WRITE_TIMEOUT:.0f}s"
                await aclose_response(upstream)  # release the backend now, whatever the socket does
            inner.cancel_scope.cancel(reason="backend stream finished")
    except trio.Cancelled:
        outcome = "client disconnected"
        raise
    finally:
        log.info("%s stream %s in %.2fs", label, outcome, time.monotonic() - started)


async def _run_stream(
    upstream: UpstreamResponse,
    translator: StreamTranslator,
    send: trio.MemorySendChannel[bytes],
    keepalive: KeepAlive,
    shutdown: ShutdownNotice | None,
    nursery: trio.Nursery,
) -> str:
    """message_start, the backend's stream, and at most one error event; the outcome."""
    await deliver(send, encode_events(translator.start()))
    keepalive.touch()
    error: ProxyError | None = None
    with trio.CancelScope() as pump:
        if shutdown is not None:
            nursery.start_soon(_cut_at_shutdown, shutdown, pump)
        try:
            await _pump(upstream, translator, send, keepalive)
        except ProxyError as exc:
            error = exc
        except ClientStalled:
            raise
        except Exception:
            log.exception("stream relay failed")
            error = UpstreamError("Internal proxy error")
    if pump.cancelled_caught:
        error = Overloaded("The proxy is shutting down; retry the request")
    if error is None:
        return "ok"
    await deliver(send, encode_event(error.body()))
    return f"error {error.error_type}: {error.message}"


async def _cut_at_shutdown(shutdown: ShutdownNotice, pump: trio.CancelScope) -> None:
    await shutdown.wait_until_cut()
    pump.cancel(reason="graceful shutdown deadline")


async def _pump(
    upstream: UpstreamResponse,
    translator: StreamTranslator,
    send: trio.MemorySendChannel[bytes],
    keepalive: KeepAlive,
) -> None:
    content_type = upstream.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        # A backend that ignored stream:true (or put an error in a 200).
        body = parse_completion_body(await read_bounded(upstream, MAX_COMPLETION_BODY))
        events = translator.feed(completion_as_chunk(body)) + translator.finish()
        await deliver(send, encode_events(events))
        return
    decoder = SSEDecoder()
    done = False
    try:
        with map_upstream_errors(), trio.CancelScope() as after_finish:
            # aclosing: a stream abandoned mid-way (disconnect) is closed here,
            # not left suspended for the garbage collector to finalize.
            async with aclosing(upstream.aiter_bytes()) as chunks:
                async for data in chunks:
                    events: list[dict[str, Any]] = []
                    done = translate_sse_events(decoder.feed(data), translator, events)
                    if events:
                        await deliver(send, encode_events(events))
                        keepalive.touch()
                    if done:
                        break
                    if translator.state == "FINISHING" and after_finish.deadline == math.inf:
                        # The answer is complete; only usage and [DONE] may follow.
                        # A backend that then holds the connection open must not
                        # hold the client's message_stop hostage.
                        after_finish.deadline = trio.current_time() + AFTER_FINISH_GRACE
        tail: list[dict[str, Any]] = []
        if not done and not after_finish.cancelled_caught:
            translate_sse_events(decoder.close(), translator, tail)
    except SSEError as exc:
        raise UpstreamError(f"Backend stream unusable: {exc}") from exc
    tail += translator.finish()
    await deliver(send, encode_events(tail))


def translate_sse_events(
    sse_events: list[ServerSentEvent], translator: StreamTranslator, out: list[dict[str, Any]]
) -> bool:
    """Feed decoded SSE events to the translator (pure); True once ``[DONE]`` arrived.

    Groq reports mid-stream failures as a named ``event: error``; the others
    put an error object in the data, which the translator recognises.
    """
    for sse in sse_events:
        data = sse.data
        if data == "[DONE]":
            return True
        if not data.strip():
            continue
        try:
            chunk = json.loads(data)
        except ValueError:
            raise UpstreamError(f"Backend sent malformed stream data: {data[:200]!r}") from None
        if not isinstance(chunk, dict):
            raise UpstreamError(f"Backend sent malformed stream data: {data[:200]!r}")
        if sse.event == "error" and "error" not in chunk:
            chunk = {"error": chunk}
        out.extend(translator.feed(chunk))
    return False
