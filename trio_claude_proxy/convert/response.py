"""OpenAI chat completion -> Anthropic Message, for ``stream: false`` (pure).

A completion is fed through the same :class:`StreamTranslator` as a stream,
as one chunk, and the events are folded into a message, the way the SDKs'
accumulators do. One code path means the streamed and non-streamed answers
cannot drift apart: think tags, tool ids, stop reasons and usage are decided
in one place.
"""

from __future__ import annotations

import copy
from typing import Any

from .jsonscan import parse_arguments
from .stream import StreamTranslator
from .types import Message, StreamEvent


def completion_to_message(completion: dict[str, Any], translator: StreamTranslator) -> Message:
    """Translate a whole chat completion.

    Raises:
        ProxyError: the body is an error in a backend's dialect, or holds no choice.
    """
    events = translator.start() + translator.feed(completion_as_chunk(completion))
    return accumulate(events + translator.finish())


def completion_as_chunk(completion: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed completion recast as the one stream chunk that says it all."""
    choices = completion.get("choices") or []
    choice = choices[0] if choices else {}
    message = choice.get("message") or {}
    delta = {key: message.get(key) for key in
             ("content", "reasoning_content", "reasoning", "reasoning_details", "refusal")}
    delta["tool_calls"] = [
        {**call, "index": i} for i, call in enumerate(message.get("tool_calls") or ())
    ]
    chunk: dict[str, Any] = {"usage": completion.get("usage")}
    for key in ("error", "object"):
        if key in completion:
            chunk[key] = completion[key]
    if choices:
        # Some servers leave finish_reason null on a complete, non-streamed answer.
        finish = choice.get("finish_reason") or "stop"
        chunk["choices"] = [{**choice, "index": 0, "delta": delta, "finish_reason": finish}]
    return chunk


def accumulate(events: list[StreamEvent]) -> Message:
    """Fold a complete event sequence into the final Message."""
    message: Message | None = None
    json_bufs: dict[int, list[str]] = {}
    for event in events:
        kind = event["type"]
        if kind == "message_start":
            message = copy.deepcopy(event["message"])
            continue
        assert message is not None, "message_start must come first"
        if kind == "content_block_start":
            message["content"].append(dict(event["content_block"]))
        elif kind == "content_block_delta":
            block = message["content"][event["index"]]
            delta = event["delta"]
            dtype = delta["type"]
            if dtype == "text_delta":
                block["text"] += delta["text"]
            elif dtype == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif dtype == "signature_delta":
                block["signature"] = delta["signature"]
            elif dtype == "input_json_delta":
                json_bufs.setdefault(event["index"], []).append(delta["partial_json"])
        elif kind == "content_block_stop":
            index = event["index"]
            block = message["content"][index]
            if block["type"] == "tool_use":
                block["input"] = parse_arguments("".join(json_bufs.pop(index, []))) or {}
        elif kind == "message_delta":
            message["stop_reason"] = event["delta"]["stop_reason"]
            message["stop_sequence"] = event["delta"].get("stop_sequence")
            message["usage"].update(event["usage"])
    assert message is not None, "no message_start"
    return message
