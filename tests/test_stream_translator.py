"""The streaming translator over golden transcripts, whole and byte by byte."""

from __future__ import annotations

import random
from typing import Any

import pytest

from trio_claude_proxy.convert import StreamTranslator, accumulate
from trio_claude_proxy.errors import ProxyError
from trio_claude_proxy.sse import SSEDecoder
from trio_claude_proxy.streaming import translate_sse_events

from .protocol import assert_valid_stream, without_ids
from .transcripts import TRANSCRIPTS, Transcript


def run(data: bytes, pieces: list[bytes], *, stop_sequences: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """What the relay does, minus I/O: SSE-decode ``pieces``, translate, finish.

    A ProxyError becomes the error event the relay would send.
    """
    translator = StreamTranslator(model="claude-test", input_tokens=7, stop_sequences=stop_sequences)
    decoder = SSEDecoder()
    events = translator.start()
    try:
        done = False
        for piece in pieces:
            done = translate_sse_events(decoder.feed(piece), translator, events)
            if done:
                break
        if not done:
            translate_sse_events(decoder.close(), translator, events)
        events += translator.finish()
    except ProxyError as exc:
        events.append(exc.body())
    return events


def splits(data: bytes) -> dict[str, list[bytes]]:
    rng = random.Random(len(data))
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, 12))) if len(data) > 1 else []
    bounds = [0, *cuts, len(data)]
    return {
        "whole": [data],
        "bytewise": [data[i : i + 1] for i in range(len(data))],
        "random": [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)],
    }


@pytest.mark.parametrize("transcript", TRANSCRIPTS, ids=lambda t: t.name)
def test_transcript(transcript: Transcript) -> None:
    results = {}
    for how, pieces in splits(transcript.body).items():
        events = run(transcript.body, pieces, stop_sequences=transcript.stop_sequences)
        assert_valid_stream(events)
        results[how] = without_ids(events)
    assert results["bytewise"] == results["whole"] == results["random"]
    events = results["whole"]
    if transcript.error_type:
        assert events[-1]["type"] == "error"
        assert events[-1]["error"]["type"] == transcript.error_type
        return
    message = accumulate(events)
    assert message["content"] == transcript.content
    assert message["stop_reason"] == transcript.stop_reason
    assert message["stop_sequence"] == transcript.stop_sequence
    if transcript.usage is not None:
        assert message["usage"] == transcript.usage
    else:  # no usage from the backend: estimates, never missing
        assert message["usage"]["input_tokens"] == 7
        assert message["usage"]["output_tokens"] >= 1


def feed_all(chunks: list[dict[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
    translator = StreamTranslator(model="m", **kwargs)
    events = translator.start()
    for c in chunks:
        events += translator.feed(c)
    return events + translator.finish()


def c(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_message_start_first_with_estimate_and_requested_model() -> None:
    translator = StreamTranslator(model="claude-sonnet-4-5", input_tokens=1234)
    (start,) = translator.start()
    assert start["type"] == "message_start"
    assert start["message"]["model"] == "claude-sonnet-4-5"
    assert start["message"]["usage"]["input_tokens"] == 1234
    assert start["message"]["id"].startswith("msg_")


def test_whitespace_before_a_tool_call_opens_no_text_block() -> None:
    events = feed_all([
        c({"content": "\n\n"}),
        c({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "A", "arguments": "{}"}}]}),
        c({}, "tool_calls"),
    ])
    assert_valid_stream(events)
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert starts == ["tool_use"]


def test_text_after_tool_call_is_a_new_block_not_interleaved() -> None:
    events = feed_all([
        c({"content": "a"}),
        c({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "A", "arguments": "{}"}}]}),
        c({"content": "b"}),
        c({}, "stop"),
    ])
    assert_valid_stream(events)
    message = accumulate(events)
    assert [b["type"] for b in message["content"]] == ["text", "tool_use", "text"]
    assert message["stop_reason"] == "tool_use"


def test_reasoning_interleaved_with_unfinished_arguments_waits() -> None:
    events = feed_all([
        c({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "A", "arguments": '{"k": "v'}}]}),
        c({"reasoning_content": "hmm"}),
        c({"tool_calls": [{"index": 0, "function": {"arguments": 'w"}'}}]}),
        c({}, "tool_calls"),
    ])
    assert_valid_stream(events)
    message = accumulate(events)
    assert message["content"][0] == {"type": "tool_use", "id": "call_1", "name": "A", "input": {"k": "vw"}}
    assert message["content"][1]["thinking"] == "hmm"


def test_same_index_new_id_is_a_new_call() -> None:
    # Some Ollama versions number every call 0.
    events = feed_all([
        c({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "A", "arguments": '{"x": 1}'}}]}),
        c({"tool_calls": [{"index": 0, "id": "b", "function": {"name": "B", "arguments": '{"y": 2}'}}]}),
        c({}, "tool_calls"),
    ])
    message = accumulate(events)
    assert [(b["id"], b["input"]) for b in message["content"]] == [("a", {"x": 1}), ("b", {"y": 2})]


def test_duplicate_backend_ids_are_made_unique() -> None:
    events = feed_all([
        c({"tool_calls": [{"index": 0, "id": "call_0", "function": {"name": "A", "arguments": "{}"}}]}),
        c({"tool_calls": [{"index": 1, "id": "call_0", "function": {"name": "A", "arguments": "{}"}}]}),
        c({}, "tool_calls"),
    ])
    ids = [b["id"] for b in accumulate(events)["content"]]
    assert len(set(ids)) == 2


def test_arguments_that_are_not_json_give_empty_input_not_a_broken_stream() -> None:
    events = feed_all([
        c({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "A", "arguments": "ls -la"}}]}),
        c({}, "tool_calls"),
    ])
    assert_valid_stream(events)
    assert accumulate(events)["content"][0]["input"] == {}


def test_content_after_finish_reason_is_ignored() -> None:
    events = feed_all([c({"content": "a"}, "stop"), c({"content": "b"})])
    assert accumulate(events)["content"] == [{"type": "text", "text": "a"}]


def test_abort_finish_reason_is_an_error() -> None:
    translator = StreamTranslator(model="m")
    translator.start()
    with pytest.raises(ProxyError):
        translator.feed(c({}, "abort"))
    assert translator.state == "ERROR"
    assert translator.feed(c({"content": "x"})) == []


def test_think_tags_can_be_turned_off() -> None:
    from trio_claude_proxy.convert import Dialect

    events = feed_all([c({"content": "<think>x</think>y"}, "stop")], dialect=Dialect(parse_think_tags=False))
    assert accumulate(events)["content"] == [{"type": "text", "text": "<think>x</think>y"}]


def test_think_tag_later_in_the_answer_is_text() -> None:
    events = feed_all([c({"content": "Use <think> tags"}, "stop")])
    assert accumulate(events)["content"] == [{"type": "text", "text": "Use <think> tags"}]
