"""Golden backend streams, one or more per dialect, with the message each must yield.

Written by hand from the dialects documented in protocol.md B.2-B.5 and
llama-cpp-backend.md (llama.cpp's was checked against the real server). Each
``Transcript`` holds the raw bytes a backend sends and the final Anthropic
message (content, stop_reason, stop_sequence, usage) the client must end with,
or the error type it must receive instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


def d(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def ch(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> str:
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish, **extra}
    return d({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [choice]})


def usage_chunk(**usage: Any) -> str:
    return d({"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": usage})


DONE = "data: [DONE]\n\n"


@dataclass
class Transcript:
    name: str
    body: bytes
    content: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: dict[str, int] | None = None
    error_type: str | None = None  # the stream must end in an error event of this type
    stop_sequences: tuple[str, ...] = ()


def T(name: str, parts: list[str], **expect: Any) -> Transcript:
    return Transcript(name, "".join(parts).encode(), **expect)


def _usage(i: int, o: int, cached: int = 0) -> dict[str, int]:
    return {"input_tokens": i, "output_tokens": o, "cache_read_input_tokens": cached,
            "cache_creation_input_tokens": 0}


BASH = '{"command": "ls -la", "description": "List files"}'

TRANSCRIPTS = [
    T(
        "openai_text_then_tool_usage_after_finish",
        [
            ch({"role": "assistant", "content": ""}),
            ch({"content": "Let me "}),
            ch({"content": "look."}),
            ch({"tool_calls": [{"index": 0, "id": "call_abc", "type": "function",
                                "function": {"name": "Bash", "arguments": ""}}]}),
            ch({"tool_calls": [{"index": 0, "function": {"arguments": BASH[:13]}}]}),
            ch({"tool_calls": [{"index": 0, "function": {"arguments": BASH[13:]}}]}),
            ch({}, "tool_calls"),
            usage_chunk(prompt_tokens=120, completion_tokens=17, total_tokens=137,
                        prompt_tokens_details={"cached_tokens": 100}),
            DONE,
        ],
        content=[
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "call_abc", "name": "Bash", "input": json.loads(BASH)},
        ],
        stop_reason="tool_use",
        usage=_usage(20, 17, 100),
    ),
    T(
        # llama-cpp-python: role-only first chunk, id/type/name repeated on every
        # chunk, legacy function_call beside tool_calls, explicit nulls, no usage.
        "llamacpp_repeated_ids_no_usage",
        [ch({"role": "assistant", "content": None, "tool_calls": None})]
        + [
            ch({"content": None, "function_call": {"name": "get_weather", "arguments": piece},
                "tool_calls": [{"index": 0, "id": "call__0_get_weather_cmpl-x", "type": "function",
                                "function": {"name": "get_weather", "arguments": piece}}]})
            for piece in ['{"', 'location', '":', ' "', 'example', '"}']
        ]
        + [ch({}, "tool_calls"), DONE],
        content=[{"type": "tool_use", "id": "call__0_get_weather_cmpl-x", "name": "get_weather",
                  "input": {"location": "example"}}],
        stop_reason="tool_use",
    ),
    T(
        "vllm_reasoning_field_and_matched_stop",
        [
            ch({"role": "assistant"}),
            ch({"reasoning": "The user "}),
            ch({"reasoning": "wants a count."}),
            ch({"content": "\n\n"}),
            ch({"content": "1, 2, 3"}),
            ch({}, "stop", stop_reason="END"),
            usage_chunk(prompt_tokens=50, completion_tokens=12, total_tokens=62),
            DONE,
        ],
        content=[
            {"type": "thinking", "thinking": "The user wants a count.", "signature": "<signature>"},
            {"type": "text", "text": "\n\n1, 2, 3"},
        ],
        stop_reason="stop_sequence",
        stop_sequence="END",
        stop_sequences=("END",),
        usage=_usage(50, 12),
    ),
    T(
        # DeepSeek: queue keep-alive comments, reasoning_content, cache-hit fields.
        "deepseek_reasoning_content_and_cache_hits",
        [
            ": keep-alive\n\n",
            ch({"role": "assistant", "content": None, "reasoning_content": ""}),
            ch({"content": None, "reasoning_content": "Think."}),
            ch({"content": "Answer", "reasoning_content": None}),
            ch({"content": ""}, "stop"),
            usage_chunk(prompt_tokens=900, completion_tokens=5, total_tokens=905,
                        prompt_cache_hit_tokens=800, prompt_cache_miss_tokens=100),
            DONE,
        ],
        content=[
            {"type": "thinking", "thinking": "Think.", "signature": "<signature>"},
            {"type": "text", "text": "Answer"},
        ],
        stop_reason="end_turn",
        usage=_usage(100, 5, 800),
    ),
    T(
        # OpenRouter: reasoning twice (plain and typed details), then usage in the last chunk.
        "openrouter_reasoning_and_details",
        [
            ": OPENROUTER PROCESSING\n\n",
            ch({"role": "assistant", "content": "", "reasoning": "Plan",
                "reasoning_details": [{"type": "reasoning.text", "text": "Plan", "index": 0}]}),
            ch({"content": "", "reasoning": None,
                "reasoning_details": [{"type": "reasoning.text", "text": " more", "index": 0}]}),
            ch({"content": "Result"}),
            d({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}}),
            DONE,
        ],
        content=[
            {"type": "thinking", "thinking": "Plan more", "signature": "<signature>"},
            {"type": "text", "text": "Result"},
        ],
        stop_reason="end_turn",
        usage=_usage(10, 4),
    ),
    T(
        "think_tags_split_across_chunks",
        [ch({"content": c}) for c in ["<th", "ink>", "step one", "</thi", "nk>\n\n", "Done."]]
        + [ch({}, "stop"), DONE],
        content=[
            {"type": "thinking", "thinking": "step one", "signature": "<signature>"},
            {"type": "text", "text": "Done."},
        ],
        stop_reason="end_turn",
    ),
    T(
        "parallel_calls_interleaved_by_index",
        [
            ch({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "Read", "arguments": '{"pa'}}]}),
            ch({"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "Grep", "arguments": '{"pat'}}]}),
            ch({"tool_calls": [{"index": 0, "function": {"arguments": 'th": "a.py"}'}}]}),
            ch({"tool_calls": [{"index": 1, "function": {"arguments": 'tern": "x"}'}}]}),
            ch({}, "tool_calls"),
            DONE,
        ],
        content=[
            {"type": "tool_use", "id": "call_a", "name": "Read", "input": {"path": "a.py"}},
            {"type": "tool_use", "id": "call_b", "name": "Grep", "input": {"pattern": "x"}},
        ],
        stop_reason="tool_use",
    ),
    T(
        # Several calls in one chunk, content and finish_reason sharing a chunk too.
        "several_calls_in_one_chunk_with_finish",
        [
            ch({"content": "Two calls:",
                "tool_calls": [
                    {"index": 0, "id": "call_1", "function": {"name": "A", "arguments": '{"x": 1}'}},
                    {"index": 1, "id": "call_2", "function": {"name": "B", "arguments": '{"y": 2}'}},
                ]}, "tool_calls"),
            DONE,
        ],
        content=[
            {"type": "text", "text": "Two calls:"},
            {"type": "tool_use", "id": "call_1", "name": "A", "input": {"x": 1}},
            {"type": "tool_use", "id": "call_2", "name": "B", "input": {"y": 2}},
        ],
        stop_reason="tool_use",
    ),
    T(
        # Ollama-style: the whole call at once, no index; Kimi-style id.
        "whole_call_no_index_kimi_id",
        [
            ch({"tool_calls": [{"id": "functions.Bash:0", "type": "function",
                                "function": {"name": "Bash", "arguments": {"command": "pwd"}}}]}),
            ch({}, "stop"),
            DONE,
        ],
        content=[{"type": "tool_use", "id": "toolu_enc_ZnVuY3Rpb25zLkJhc2g6MA", "name": "Bash",
                  "input": {"command": "pwd"}}],
        stop_reason="tool_use",
    ),
    T(
        "missing_tool_id_gets_one",
        [
            ch({"tool_calls": [{"index": 0, "function": {"name": "Bash", "arguments": '{"command": "x"}'}}]}),
            ch({}, "tool_calls"),
            DONE,
        ],
        content=[{"type": "tool_use", "id": "<toolu_id>", "name": "Bash", "input": {"command": "x"}}],
        stop_reason="tool_use",
    ),
    T(
        # Azure: a first chunk with empty choices and prompt_filter_results; CRLF framing.
        "azure_prompt_filter_first_chunk_crlf",
        [
            d({"id": "", "object": "", "choices": [], "prompt_filter_results": [{"prompt_index": 0}]}).replace("\n", "\r\n"),
            ch({"content": "Hi"}).replace("\n", "\r\n"),
            ch({}, "stop").replace("\n", "\r\n"),
            DONE.replace("\n", "\r\n"),
        ],
        content=[{"type": "text", "text": "Hi"}],
        stop_reason="end_turn",
    ),
    T(
        "unicode_escape_split_in_arguments",
        [
            ch({"tool_calls": [{"index": 0, "id": "call_u", "function": {"name": "Write", "arguments": '{"t": "caf\\u00'}}]}),
            ch({"tool_calls": [{"index": 0, "function": {"arguments": 'e9 \\ud83d'}}]}),
            ch({"tool_calls": [{"index": 0, "function": {"arguments": '\\ude00 \\'}}]}),
            ch({"tool_calls": [{"index": 0, "function": {"arguments": 'n"}'}}]}),
            ch({}, "tool_calls"),
            DONE,
        ],
        content=[{"type": "tool_use", "id": "call_u", "name": "Write", "input": {"t": "café 😀 \n"}}],
        stop_reason="tool_use",
    ),
    T(
        "length_inside_tool_call",
        [
            ch({"tool_calls": [{"index": 0, "id": "call_l", "function": {"name": "Write", "arguments": '{"path": "a", "text": "abc'}}]}),
            ch({}, "length"),
            DONE,
        ],
        # The cut-off string member is dropped, as the SDK's partial parser does.
        content=[{"type": "tool_use", "id": "call_l", "name": "Write", "input": {"path": "a"}}],
        stop_reason="max_tokens",
    ),
    T(
        "content_filter_is_refusal",
        [ch({"content": "I can"}), ch({}, "content_filter"), DONE],
        content=[{"type": "text", "text": "I can"}],
        stop_reason="refusal",
    ),
    T(
        "no_done_line_after_usage",  # the stream simply ends
        [ch({"content": "ok"}), ch({}, "stop"), usage_chunk(prompt_tokens=3, completion_tokens=1, total_tokens=4)],
        content=[{"type": "text", "text": "ok"}],
        stop_reason="end_turn",
        usage=_usage(3, 1),
    ),
    T("truncated_without_finish_reason", [ch({"content": "partial"})], error_type="api_error"),
    T("empty_body", [], error_type="api_error"),
    T(
        "openai_error_mid_stream",
        [ch({"content": "x"}), d({"error": {"message": "boom", "type": "server_error", "code": None}}), DONE],
        error_type="api_error",
    ),
    T(
        "sglang_flat_error_object",
        [d({"object": "error", "message": "bad input", "type": "BadRequest", "param": None, "code": 400})],
        error_type="invalid_request_error",
    ),
    T(
        "openrouter_finish_reason_error",
        [ch({"content": "x"}),
         d({"id": "c", "error": {"code": "server_error", "message": "Provider disconnected unexpectedly"},
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]})],
        error_type="api_error",
    ),
    T(
        "groq_named_error_event",
        [ch({"content": "x"}),
         'event: error\ndata: {"error":{"message":"Failed to call a function","type":"invalid_request_error",'
         '"code":"tool_use_failed","status_code":400}}\n\n'],
        error_type="invalid_request_error",
    ),
]
