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


def tc(index: int, id: str | None = None, name: str | None = None, arguments: str = "") -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if id is not None:
        call["id"] = id
    if name is not None:
        call["function"]["name"] = name
    return c({"tool_calls": [call]})


def inputs(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    assert_valid_stream(events)
    return [(b["name"], b["input"]) for b in accumulate(events)["content"] if b["type"] == "tool_use"]


def test_blank_first_argument_delta_is_not_sent() -> None:
    events = feed_all([tc(0, "a", "A", " "), tc(0, arguments='{"c": 1}'), c({}, "tool_calls")])
    assert inputs(events) == [("A", {"c": 1})]


def test_interleaved_calls_with_text_between_keep_their_arguments_in_order() -> None:
    events = feed_all([
        tc(0, "a", "A", '{"a":'), tc(1, "b", "B", '{"b"'), c({"content": "hi"}),
        tc(1, arguments=":"), tc(0, arguments="1}"), tc(1, arguments="2}"), c({}, "tool_calls"),
    ])
    assert inputs(events) == [("A", {"a": 1}), ("B", {"b": 2})]


def test_queued_pieces_survive_the_end_of_the_stream() -> None:
    events = feed_all([
        tc(0, "a", "A", '{"a":'), tc(1, "b", "B", '{"b"'), c({"content": "hi"}), tc(1, arguments=":2}"),
        c({}, "tool_calls"),
    ])
    assert ("B", {"b": 2}) in inputs(events)


def test_every_call_numbered_zero_keeps_each_calls_arguments() -> None:
    events = feed_all([tc(0, "a", "A", '{"x":1}'), tc(0, "b", "B", ""), tc(0, arguments='{"y":2}'),
                       c({}, "tool_calls")])
    assert inputs(events) == [("A", {"x": 1}), ("B", {"y": 2})]


def test_new_id_mid_value_is_not_a_new_call() -> None:
    events = feed_all([tc(0, "a", "A", '{"x":'), tc(0, "b", None, "1}"), c({}, "tool_calls")])
    assert inputs(events) == [("A", {"x": 1})]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('"{\\"c\\": 1}"', {"c": 1}),  # double-encoded
        ('{"a":1}}', {"a": 1}),  # junk after the object
        ('{"a":1}{"b":2}', {"a": 1}),  # a second object
        ("[1, 2]", {}),  # not an object
    ],
)
@pytest.mark.parametrize("stream", [True, False])
def test_arguments_that_are_not_one_plain_object(arguments: str, expected: dict[str, Any], stream: bool) -> None:
    from trio_claude_proxy.convert import completion_to_message

    if stream:
        events = feed_all([tc(0, "a", "A", arguments), c({}, "tool_calls")])
        assert inputs(events) == [("A", expected)]
    else:
        body = {"choices": [{"message": {"content": None, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "A", "arguments": arguments}}]},
            "finish_reason": "tool_calls"}]}
        message = completion_to_message(body, StreamTranslator(model="m"))
        assert message["content"][0]["input"] == expected


def test_name_arriving_after_the_id_opens_the_block_with_it() -> None:
    events = feed_all([tc(0, "a", None, '{"x"'), tc(0, name="Bash", arguments=": 1}"), c({}, "tool_calls")])
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert starts == [{"type": "tool_use", "id": "a", "name": "Bash", "input": {}}]
    assert inputs(events) == [("Bash", {"x": 1})]


def test_refusal_field_becomes_text_and_stop_reason() -> None:
    events = feed_all([c({"refusal": "I can't help with that."}), c({}, "stop")])
    message = accumulate(events)
    assert message["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert message["stop_reason"] == "refusal"


def test_cache_writes_are_cache_creation() -> None:
    events = feed_all([c({"content": "x"}, "stop"),
                       {"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 3,
                                                 "prompt_tokens_details": {"cached_tokens": 10,
                                                                           "cache_write_tokens": 50}}}])
    assert accumulate(events)["usage"] == {"input_tokens": 40, "cache_creation_input_tokens": 50,
                                           "cache_read_input_tokens": 10, "output_tokens": 3}


def test_openrouter_reasoning_details_ride_in_the_signature_and_come_back() -> None:
    from trio_claude_proxy.convert import Dialect, to_chat_request, validate_request

    details = [
        {"type": "reasoning.text", "text": "Let me ", "index": 0, "format": "anthropic-claude-v1"},
        {"type": "reasoning.text", "text": "think.", "index": 0, "signature": "EqQBCkYIBxgCKkDx"},
        {"type": "reasoning.encrypted", "data": "gAAAAB...", "index": 1},
    ]
    events = feed_all([
        c({"reasoning": "Let me ", "reasoning_details": [details[0]]}),
        c({"reasoning": "think.", "reasoning_details": [details[1]]}),
        c({"reasoning_details": [details[2]]}),
        c({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "A", "arguments": "{}"}}]}),
        c({}, "tool_calls"),
    ])
    assert_valid_stream(events)
    message = accumulate(events)
    thinking = message["content"][0]
    assert thinking["thinking"] == "Let me think."
    history = {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": message["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "ok"}]},
    ]}
    request = validate_request(history)
    replayed = to_chat_request(request, model="m", dialect=Dialect(replay_reasoning_details=True))
    assert replayed["messages"][1]["reasoning_details"] == [
        {"type": "reasoning.text", "text": "Let me think.", "index": 0, "format": "anthropic-claude-v1",
         "signature": "EqQBCkYIBxgCKkDx"},
        {"type": "reasoning.encrypted", "data": "gAAAAB...", "index": 1},
    ]
    plain = to_chat_request(request, model="m")
    assert "reasoning_details" not in plain["messages"][1]


def test_encrypted_only_reasoning_becomes_an_empty_signed_thinking_block() -> None:
    events = feed_all([c({"reasoning_details": [{"type": "reasoning.encrypted", "data": "x", "index": 0}]}),
                       c({"content": "Hi"}, "stop")])
    assert_valid_stream(events)
    blocks = accumulate(events)["content"]
    assert blocks[0] == {"type": "text", "text": "Hi"}
    assert blocks[1]["type"] == "thinking" and blocks[1]["thinking"] == ""
    assert blocks[1]["signature"].startswith("tcp1_d_")


def test_held_back_output_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from trio_claude_proxy.convert import stream

    monkeypatch.setattr(stream, "QUEUE_LIMIT", 1000)
    translator = StreamTranslator(model="m")
    events = translator.start()
    events += translator.feed(tc(0, "a", "A", '{"never": "clos'))  # arguments that never finish
    for _ in range(50):
        events += translator.feed(c({"content": "text " * 10}))
    # The queue gave up on the open call instead of holding all 2,500 characters.
    assert sum(len(e["delta"].get("text", "")) for e in events if e["type"] == "content_block_delta") >= 1000
    events += translator.feed(c({}, "stop")) + translator.finish()
    assert_valid_stream(events)


def test_endless_whitespace_is_not_held_forever() -> None:
    translator = StreamTranslator(model="m")
    events = translator.start()
    for _ in range(100):
        events += translator.feed(c({"content": "\n" * 1000}))
    assert any(e["type"] == "content_block_start" for e in events)  # flushed past the limit
    assert len(translator._pending_ws) <= 64 * 1024
