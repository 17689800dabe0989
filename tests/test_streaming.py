"""Stream timing in virtual time: pings, disconnects, long streams (Quart's test client).

No sockets here, so trio's autojump clock can run minutes of backend silence
in milliseconds, and times are asserted exactly.
"""

from __future__ import annotations

import json
from typing import Any

import trio

from trio_claude_proxy import Settings, create_app

from . import fakes
from .fakes import Reply, ScriptedBackend
from .protocol import assert_valid_stream

BODY = json.dumps({"model": "m", "max_tokens": 50, "stream": True,
                   "messages": [{"role": "user", "content": "hi"}]}).encode()
HEADERS = {"x-api-key": "k", "content-type": "application/json"}


def events_of(raw: bytes) -> list[tuple[float, dict[str, Any]]]:
    return [(0.0, json.loads(b.split(b"\ndata: ", 1)[1])) for b in raw.split(b"\n\n") if b]


async def collect(app: Any, arrivals: list[tuple[float, dict[str, Any]]], *, stop_after: int | None = None) -> None:
    """Drive one streamed request through the app's ASGI interface.

    Records (virtual time, event) per event received; after ``stop_after``
    events the client hangs up (``http.disconnect``), as Hypercorn reports a
    closed socket. (quart-trio's own test client cannot be left mid-stream:
    its exit waits for a response end that never comes, quart-trio.md 5.7.)
    """
    hang_up = trio.Event()
    finished = trio.Event()
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200
        elif message["type"] == "http.response.body":
            for _, event in events_of(message.get("body", b"")):
                arrivals.append((trio.current_time(), event))
            if stop_after is not None and len(arrivals) >= stop_after:
                hang_up.set()
            if not message.get("more_body"):
                finished.set()

    await app(_scope(), receive, send)
    if stop_after is None:
        assert finished.is_set()


def make_app(backend: ScriptedBackend, **settings: Any) -> Any:
    return create_app(Settings(**settings), http_client=backend.client())


async def test_pings_while_the_backend_is_silent(autojump_clock: trio.abc.Clock) -> None:
    body = fakes.sse([fakes.text("late"), fakes.chunk({}, "stop")])
    backend = ScriptedBackend([Reply(200, [(40.0, body)], {"content-type": "text/event-stream"})])
    arrivals: list[tuple[float, dict[str, Any]]] = []
    start = trio.current_time()
    with trio.fail_after(120):
        await collect(make_app(backend), arrivals)
    times = [(round(t - start, 3), e["type"]) for t, e in arrivals]
    assert times[0] == (0.0, "message_start")
    assert [t for t, kind in times if kind == "ping"] == [15.0, 30.0]
    assert times[-1] == (40.0, "message_stop")
    assert_valid_stream([e for _, e in arrivals])


async def test_ping_interval_is_configurable_and_counts_from_the_last_write(autojump_clock: trio.abc.Clock) -> None:
    steps = [(4.0, fakes.sse([fakes.text("a")], done=False)),
             (9.0, fakes.sse([fakes.text("b"), fakes.chunk({}, "stop")]))]
    backend = ScriptedBackend([Reply(200, steps, {"content-type": "text/event-stream"})])
    arrivals: list[tuple[float, dict[str, Any]]] = []
    start = trio.current_time()
    await collect(make_app(backend, ping_interval=5.0), arrivals)
    pings = [round(t - start, 3) for t, e in arrivals if e["type"] == "ping"]
    assert pings == [9.0]  # 5 s after the text at 4 s; none before it


async def test_streams_are_not_cut_at_sixty_seconds(autojump_clock: trio.abc.Clock) -> None:
    # Quart's default RESPONSE_TIMEOUT would silently end this at 60 s.
    steps = [(30.0 * i, fakes.sse([fakes.text(f"{i} ")], done=False)) for i in range(1, 5)]
    steps.append((1.0, fakes.sse([fakes.chunk({}, "stop")])))
    backend = ScriptedBackend([Reply(200, steps, {"content-type": "text/event-stream"})])
    arrivals: list[tuple[float, dict[str, Any]]] = []
    start = trio.current_time()
    await collect(make_app(backend), arrivals)
    assert arrivals[-1][1]["type"] == "message_stop"
    assert round(arrivals[-1][0] - start) == 301  # 30+60+90+120 s of gaps, then 1 s
    assert_valid_stream([e for _, e in arrivals])


async def test_client_disconnect_closes_the_backend_stream(autojump_clock: trio.abc.Clock) -> None:
    steps = [(1.0, fakes.sse([fakes.text(f"{i} ")], done=False)) for i in range(100)]
    backend = ScriptedBackend([Reply(200, steps, {"content-type": "text/event-stream"})])
    arrivals: list[tuple[float, dict[str, Any]]] = []
    start = trio.current_time()
    with trio.fail_after(60):
        await collect(make_app(backend), arrivals, stop_after=4)
        await trio.sleep(1)
    left_at = arrivals[-1][0]
    assert len(backend.closed_at) == 1
    assert backend.closed_at[0] - left_at <= 1.0
    assert backend.closed_at[0] - start < 10  # not after the 100 s the stream would take


async def test_backend_read_timeout_becomes_an_error_event(autojump_clock: trio.abc.Clock) -> None:
    import httpx

    class Stall(httpx.AsyncByteStream):
        async def __aiter__(self) -> Any:
            yield fakes.sse([fakes.text("a")], done=False)
            await trio.sleep(1000)
            raise httpx.ReadTimeout("timed out")
            yield b""  # pragma: no cover

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Stall())

    app = create_app(Settings(), http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    arrivals: list[tuple[float, dict[str, Any]]] = []
    await collect(app, arrivals)
    events = [e for _, e in arrivals]
    assert_valid_stream(events)
    assert events[-1] == {"type": "error", "error": {"type": "timeout_error",
                                                     "message": "Timed out waiting for the backend"}}
    assert sum(e["type"] == "ping" for e in events) == 66  # every 15 s of the 1000 s stall


async def test_a_backend_that_hangs_after_finish_reason_does_not_hold_the_client(
    autojump_clock: trio.abc.Clock,
) -> None:
    steps = [(0.0, fakes.sse([fakes.text("done"), fakes.chunk({}, "stop")], done=False)),
             (1000.0, fakes.sse([fakes.usage(5, 1)]))]
    backend = ScriptedBackend([Reply(200, steps, {"content-type": "text/event-stream"})])
    arrivals: list[tuple[float, dict[str, Any]]] = []
    start = trio.current_time()
    await collect(make_app(backend), arrivals)
    assert arrivals[-1][1]["type"] == "message_stop"
    assert round(arrivals[-1][0] - start, 3) == 5.0
    assert_valid_stream([e for _, e in arrivals])
    assert len(backend.closed_at) == 1


async def test_a_client_that_stops_reading_releases_the_backend(autojump_clock: trio.abc.Clock) -> None:
    from trio_claude_proxy import streaming

    steps = [(1.0, fakes.sse([fakes.text(f"{i} ")], done=False)) for i in range(1000)]
    backend = ScriptedBackend([Reply(200, steps, {"content-type": "text/event-stream"})])
    app = make_app(backend)
    stalled_at: list[float] = []

    async def receive() -> dict[str, Any]:
        if not stalled_at and not hasattr(receive, "sent"):
            receive.sent = True  # type: ignore[attr-defined]
            return {"type": "http.request", "body": BODY, "more_body": False}
        await trio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and b"content_block_delta" in message.get("body", b""):
            stalled_at.append(trio.current_time())
            await trio.sleep_forever()  # a client with its socket open, reading nothing

    async with trio.open_nursery() as nursery:
        nursery.start_soon(app, _scope(), receive, send)
        with trio.fail_after(1000):
            while not backend.closed_at:
                await trio.sleep(1)
        nursery.cancel_scope.cancel()
    # The relay blocks from the next chunk (one second later) and gives up WRITE_TIMEOUT after.
    assert backend.closed_at[0] - stalled_at[0] == 1.0 + streaming.WRITE_TIMEOUT


async def test_graceful_shutdown_ends_streams_with_an_overloaded_error(autojump_clock: trio.abc.Clock) -> None:
    from trio_claude_proxy.streaming import ShutdownNotice

    steps = [(1.0, fakes.sse([fakes.text(f"{i} ")], done=False)) for i in range(100)]
    backend = ScriptedBackend([Reply(200, steps, {"content-type": "text/event-stream"})])
    notice = ShutdownNotice()
    app = create_app(Settings(), http_client=backend.client(), shutdown=notice)
    arrivals: list[tuple[float, dict[str, Any]]] = []
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(collect, app, arrivals)
        await trio.sleep(5)
        notice.begin(20.0)  # what the server does when SIGTERM arrives
    events = [e for _, e in arrivals]
    assert_valid_stream(events)
    assert events[-1] == {"type": "error", "error": {"type": "overloaded_error",
                                                     "message": "The proxy is shutting down; retry the request"}}
    assert round(arrivals[-1][0] - start, 3) == 24.0  # one second before the 25 s hard deadline
    assert len(backend.closed_at) == 1


def _scope() -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/messages", "raw_path": b"/v1/messages", "query_string": b"",
        "root_path": "", "headers": [(k.encode(), v.encode()) for k, v in HEADERS.items()],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2), "extensions": {},
    }
