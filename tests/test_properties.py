"""Property: however a response is fragmented, the client ends with the same message.

Hypothesis builds a response (reasoning, text, several tool calls with
awkward arguments: quotes, backslashes, newlines, emoji, ``\\u`` escapes),
fragments every piece of text and every argument string at random, interleaves
the tool calls' fragments, frames the chunks as SSE and cuts the bytes at random
boundaries. The event stream must be valid (blocks sequential, every
``input_json_delta`` prefix parseable as the SDK parses it) and fold into the
message the unfragmented response means.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_claude_proxy.convert import StreamTranslator, accumulate
from trio_claude_proxy.sse import SSEDecoder
from trio_claude_proxy.streaming import translate_sse_events

from .protocol import assert_valid_stream

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="<"), min_size=1,
               max_size=40).filter(lambda t: t.strip())
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
ARGS = st.dictionaries(st.text(min_size=1, max_size=8), VALUES, max_size=4)


def fragments(draw: Any, text: str) -> list[str]:
    if len(text) < 2:
        return [text]
    cuts = sorted(draw(st.sets(st.integers(1, len(text) - 1), max_size=6)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@st.composite
def responses(draw: Any) -> tuple[list[dict[str, Any]], dict[str, Any], list[bytes]]:
    reasoning = draw(st.none() | TEXT)
    text = draw(st.none() | TEXT)
    calls = draw(st.lists(st.tuples(st.sampled_from(["Bash", "Read", "Write"]), ARGS), max_size=3))
    chunks: list[dict[str, Any]] = []

    def delta(d: dict[str, Any]) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": d, "finish_reason": None}]}

    for piece in fragments(draw, reasoning or ""):
        if piece:
            chunks.append(delta({"reasoning_content": piece}))
    for piece in fragments(draw, text or ""):
        if piece:
            chunks.append(delta({"content": piece}))
    per_call: list[list[dict[str, Any]]] = []
    for i, (name, args) in enumerate(calls):
        encoded = json.dumps(args, ensure_ascii=draw(st.booleans()))
        pieces = [delta({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                         "function": {"name": name, "arguments": ""}}]})]
        pieces += [delta({"tool_calls": [{"index": i, "function": {"arguments": p}}]})
                   for p in fragments(draw, encoded)]
        per_call.append(pieces)
    # Interleave the calls' chunks at random, each call's own order kept.
    tokens = draw(st.permutations([i for i, pieces in enumerate(per_call) for _ in pieces]))
    cursors = [0] * len(per_call)
    first_seen: list[int] = []
    for i in tokens:
        if i not in first_seen:
            first_seen.append(i)
        chunks.append(per_call[i][cursors[i]])
        cursors[i] += 1
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if calls else "stop"}]})

    expected: list[dict[str, Any]] = []
    if reasoning:
        expected.append({"type": "thinking", "thinking": reasoning})
    if text:
        expected.append({"type": "text", "text": text})
    # Tool blocks come in the order the calls first appear.
    expected += [{"type": "tool_use", "id": f"call_{i}", "name": calls[i][0], "input": calls[i][1]}
                 for i in first_seen]
    wire = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode() + b"data: [DONE]\n\n"
    cuts = sorted(draw(st.sets(st.integers(1, len(wire) - 1), max_size=30)))
    bounds = [0, *cuts, len(wire)]
    return chunks, {"content": expected, "tool": bool(calls)}, [wire[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses())
def test_any_fragmentation_gives_the_same_message(case: Any) -> None:
    _, expected, pieces = case
    translator = StreamTranslator(model="m")
    decoder = SSEDecoder()
    events = translator.start()
    for piece in pieces:
        translate_sse_events(decoder.feed(piece), translator, events)
    events += translator.finish()
    assert_valid_stream(events)
    message = accumulate(events)
    content = [{k: v for k, v in block.items() if k != "signature"} for block in message["content"]]
    assert content == expected["content"]
    assert message["stop_reason"] == ("tool_use" if expected["tool"] else "end_turn")
