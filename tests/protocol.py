"""What a valid Anthropic event stream is, checked the way the strictest client reads it.

The rules come from protocol.md A.5/A.6: the SDK accumulators append on
``content_block_start``; Claude Code throws "Content block not found" for an
unknown index and "Content block is not a text block" for a mismatched delta;
the Python SDK re-parses every ``input_json_delta`` prefix with jiter.
"""

from __future__ import annotations

from typing import Any

import jiter

_DELTA_FOR = {"text": "text_delta", "thinking": "thinking_delta", "tool_use": "input_json_delta"}


def assert_valid_stream(events: list[dict[str, Any]], *, complete: bool = True) -> None:
    """Raise AssertionError unless ``events`` obey the Anthropic stream grammar."""
    events = [e for e in events if e["type"] != "ping"]
    assert events, "no events"
    assert events[0]["type"] == "message_start", events[0]
    usage = events[0]["message"]["usage"]
    assert isinstance(usage["input_tokens"], int) and isinstance(usage["output_tokens"], int)
    blocks: list[dict[str, Any]] = []
    open_index: int | None = None
    json_buf: dict[int, str] = {}
    signed: set[int] = set()
    saw_delta_message = False
    for event in events[1:]:
        kind = event["type"]
        assert kind != "message_start", "second message_start"
        if kind == "error":
            assert set(event) == {"type", "error"}, event
            assert isinstance(event["error"]["type"], str) and isinstance(event["error"]["message"], str)
            assert event is events[-1], "error must end the stream"
            return
        if kind == "content_block_start":
            assert open_index is None, f"block {open_index} still open"
            assert event["index"] == len(blocks), f"index {event['index']}, expected {len(blocks)}"
            blocks.append(event["content_block"])
            open_index = event["index"]
        elif kind == "content_block_delta":
            assert event["index"] == open_index, f"delta for {event['index']}, open {open_index}"
            block = blocks[event["index"]]
            delta = event["delta"]
            if delta["type"] == "signature_delta":
                assert block["type"] == "thinking"
                assert delta["signature"]
                signed.add(event["index"])
                continue
            assert delta["type"] == _DELTA_FOR[block["type"]], (block["type"], delta["type"])
            assert event["index"] not in signed, "delta after signature"
            if delta["type"] == "input_json_delta":
                buf = json_buf.get(event["index"], "") + delta["partial_json"]
                jiter.from_json(buf.encode(), partial_mode=True)  # raises as the SDK would
                json_buf[event["index"]] = buf
            else:
                payload = delta.get("text", delta.get("thinking"))
                assert payload, "empty delta"
        elif kind == "content_block_stop":
            assert event["index"] == open_index, (event, open_index)
            if blocks[open_index]["type"] == "thinking":
                assert open_index in signed, "thinking block closed without signature_delta"
            open_index = None
        elif kind == "message_delta":
            assert open_index is None, "message_delta with a block open"
            assert isinstance(event["usage"]["output_tokens"], int)
            assert event["delta"]["stop_reason"] in (
                "end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "pause_turn"
            )
            saw_delta_message = True
        elif kind == "message_stop":
            assert saw_delta_message, "message_stop without message_delta"
            assert event is events[-1], "events after message_stop"
        else:
            raise AssertionError(f"unknown event type {kind}")
    if complete:
        assert events[-1]["type"] == "message_stop", events[-1]


def as_transcript_blocks(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A client's final content in the form transcripts expect: our signatures
    and random tool ids replaced by placeholders (after checking they are ours)."""
    out = []
    for block in blocks:
        block = {k: v for k, v in block.items() if k != "citations"}
        if block["type"] == "thinking":
            assert block["signature"].startswith("tcp1_")
            block["signature"] = "<signature>"
        if block["type"] == "tool_use" and not block["id"].startswith(("call", "toolu_enc_")):
            block["id"] = "<toolu_id>"
        out.append(block)
    return out


def without_ids(value: Any) -> Any:
    """Replace the ids and signatures we generate at random, so two runs compare equal.

    Ids derived from the backend's (``call_1``, ``toolu_enc_...``) are kept: they
    are part of what is tested.
    """
    if isinstance(value, dict):
        return {key: without_ids(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_ids(v) for v in value]
    if isinstance(value, str):
        if value.startswith("msg_"):
            return "<msg_id>"
        if value.startswith("tcp1_"):
            return "<signature>"
        if value.startswith("toolu_") and not value.startswith("toolu_enc_"):
            return "<toolu_id>"
    return value
