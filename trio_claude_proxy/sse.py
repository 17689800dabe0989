"""Server-sent events, sans I/O: bytes in, events out; events in, bytes out.

The decoder follows the WHATWG event-stream rules
(https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream):
lines end in CRLF, LF or CR, and *only* those. ``str.splitlines()`` (and so
``httpx.Response.aiter_lines()``) also splits on U+2028, U+0085 and friends,
which JSON allows raw inside strings, so a model that writes one would corrupt
the stream. We split bytes, as the Anthropic SDK's own ``SSEDecoder`` does, and
decode a line only once it is whole, so a UTF-8 character split across reads
is never mangled.

Buffers are bounded: an event larger than ``max_event_size`` raises
:class:`SSEError` instead of growing without limit.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# A whole tool call can arrive in one event (Ollama, Gemini-style backends), and a
# model writing a file writes it into the arguments: allow several megabytes.
DEFAULT_MAX_EVENT_SIZE = 16 * 1024 * 1024

_EOL = re.compile(rb"\r\n|\r|\n")


class SSEError(Exception):
    """The peer sent an event stream we refuse to decode (too large an event)."""


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str | None
    data: str


class SSEDecoder:
    """Incremental event-stream decoder.

    Feed it bytes as they arrive; it returns each event once its terminating
    blank line has been seen. :meth:`close` flushes an event left unterminated
    at end of stream (the spec would drop it; several backends end their last
    ``data: [DONE]`` without the blank line, so we keep it).
    """

    def __init__(self, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        self._max = max_event_size
        self._buffer = bytearray()
        self._skip_lf = False  # the last read ended in CR; a leading LF belongs to it
        self._event: str | None = None
        self._data: list[str] = []
        self._size = 0

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        if self._skip_lf and data[:1] == b"\n":
            data = data[1:]
        self._skip_lf = False
        buf = self._buffer
        buf += data
        events: list[ServerSentEvent] = []
        start = 0
        for match in _EOL.finditer(buf):
            line = bytes(buf[start : match.start()])
            start = match.end()
            if start == len(buf) and match.group() == b"\r":
                self._skip_lf = True
            event = self._line(line)
            if event is not None:
                events.append(event)
        if start:
            del buf[:start]
        if len(buf) + self._size > self._max:
            raise SSEError(f"event stream event larger than {self._max} bytes")
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of stream: decode a last unterminated line and pending event."""
        events: list[ServerSentEvent] = []
        if self._buffer:
            line = bytes(self._buffer)
            self._buffer.clear()
            event = self._line(line)
            if event is not None:
                events.append(event)
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _line(self, raw: bytes) -> ServerSentEvent | None:
        if not raw:
            return self._dispatch()
        if raw[:1] == b":":  # comment, e.g. ": OPENROUTER PROCESSING", ": keep-alive"
            return None
        line = raw.decode("utf-8", errors="replace")
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._size += len(raw)
        elif name == "event":
            self._event = value
        # "id", "retry" and unknown fields are ignored: the relay never reconnects.
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._event = None
            return None
        event = ServerSentEvent(self._event, "\n".join(self._data))
        self._event = None
        self._data = []
        self._size = 0
        return event


def encode_event(event: dict[str, Any]) -> bytes:
    """One Anthropic stream event as SSE bytes.

    Both SDKs dispatch on the ``event:`` line and TypeScript reads ``type`` from
    the data, so every event carries both (Anthropic streaming docs: "Each event
    will use an SSE event name ... and include the matching event type in its
    data"). ``json.dumps`` escapes CR and LF, so the data is always one line;
    its ASCII output also survives a lone surrogate a backend escaped into a
    string, which ``ensure_ascii=False`` would turn into an encoding error.
    """
    data = json.dumps(event, separators=(",", ":"))
    return b"event: %s\ndata: %s\n\n" % (event["type"].encode(), data.encode())


def encode_events(events: list[dict[str, Any]]) -> bytes:
    return b"".join(encode_event(e) for e in events)


PING = encode_event({"type": "ping"})
