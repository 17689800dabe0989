"""The SSE decoder, fed whole and byte by byte (h11's "incrementally growing buffer")."""

from __future__ import annotations

import json

import pytest

from trio_claude_proxy.sse import PING, ServerSentEvent, SSEDecoder, SSEError, encode_event


def decode_whole(data: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return decoder.feed(data) + decoder.close()


def decode_bytewise(data: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = []
    for i in range(len(data)):
        events += decoder.feed(data[i : i + 1])
    return events + decoder.close()


def both(data: bytes) -> list[ServerSentEvent]:
    whole = decode_whole(data)
    assert decode_bytewise(data) == whole
    return whole


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(eol: bytes) -> None:
    data = eol.join([b"event: a", b"data: 1", b"", b"data: 2", b"data: 3", b"", b""])
    assert both(data) == [ServerSentEvent("a", "1"), ServerSentEvent(None, "2\n3")]


def test_crlf_split_between_reads_is_one_line_ending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [ServerSentEvent(None, "a\nb")]


def test_unicode_line_separators_inside_json_do_not_split() -> None:
    # U+2028, U+0085 and form feed are line breaks to str.splitlines(), not to SSE.
    payload = json.dumps({"t": "a\u2028b\x85c\x0cd"}, ensure_ascii=False)
    events = both(f"data: {payload}\n\n".encode())
    assert json.loads(events[0].data) == {"t": "a\u2028b\x85c\x0cd"}


def test_multibyte_character_split_across_reads() -> None:
    data = "data: {\"t\": \"héllo 😀\"}\n\n".encode()
    assert json.loads(decode_bytewise(data)[0].data) == {"t": "héllo 😀"}


def test_comments_blank_lines_and_unknown_fields_are_ignored() -> None:
    data = b": OPENROUTER PROCESSING\n\n\n: keep-alive\nretry: 100\nfoo: bar\ndata: x\n\n"
    assert both(data) == [ServerSentEvent(None, "x")]


def test_field_without_space_and_without_colon() -> None:
    # A bare "data" line is the field with an empty value (WHATWG: still dispatched).
    assert both(b"data:x\nevent:e\n\ndata\n\n") == [ServerSentEvent("e", "x"), ServerSentEvent(None, "")]


def test_event_name_without_data_is_not_dispatched_and_does_not_leak() -> None:
    assert both(b"event: error\n\ndata: x\n\n") == [ServerSentEvent(None, "x")]


def test_unterminated_last_event_is_kept_at_close() -> None:
    assert both(b"data: 1\n\ndata: [DONE]") == [ServerSentEvent(None, "1"), ServerSentEvent(None, "[DONE]")]


def test_event_size_is_bounded() -> None:
    decoder = SSEDecoder(max_event_size=100)
    decoder.feed(b"data: " + b"x" * 50 + b"\n")
    with pytest.raises(SSEError):
        decoder.feed(b"data: " + b"y" * 60)


def test_bound_counts_one_event_not_the_stream() -> None:
    decoder = SSEDecoder(max_event_size=100)
    for _ in range(100):
        assert decoder.feed(b"data: " + b"x" * 60 + b"\n\n")


def test_encode_event_names_the_type_and_is_one_data_line() -> None:
    raw = encode_event({"type": "content_block_delta", "text": "a\nb\r\u2028\ud83d"})
    head, data, blank, end = raw.split(b"\n")
    assert head == b"event: content_block_delta"
    assert json.loads(data[len(b"data: "):]) == {"type": "content_block_delta", "text": "a\nb\r\u2028\ud83d"}
    assert (blank, end) == (b"", b"")
    assert PING == b'event: ping\ndata: {"type":"ping"}\n\n'
