"""Anthropic request -> OpenAI request, and request validation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trio_claude_proxy.convert import Dialect, to_chat_request, validate_request
from trio_claude_proxy.convert.ids import to_anthropic_tool_id, to_backend_tool_id
from trio_claude_proxy.errors import InvalidRequest

from .pdfs import pdf_b64


def convert(**request: Any) -> dict[str, Any]:
    request.setdefault("model", "claude-x")
    request.setdefault("max_tokens", 100)
    request.setdefault("messages", [{"role": "user", "content": "hi"}])
    return to_chat_request(validate_request(request), model="backend-model")


def test_minimal() -> None:
    assert convert() == {
        "model": "backend-model",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_stream_asks_for_usage() -> None:
    out = convert(stream=True)
    assert out["stream"] is True
    assert out["stream_options"] == {"include_usage": True}


def test_system_string_blocks_and_mid_conversation_system_messages_lead() -> None:
    out = convert(
        system=[
            {"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "B"},
        ],
        messages=[
            {"role": "user", "content": "u1"},
            {"role": "system", "content": [{"type": "text", "text": "C"}], "output_config": {"effort": "x"}},
            {"role": "assistant", "content": "a1"},
            {"role": "system", "content": "D"},
            {"role": "system", "content": []},
            {"role": "user", "content": "u2"},
        ],
    )
    assert out["messages"] == [
        {"role": "system", "content": "A\n\nB\n\nC\n\nD"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
    ]


def test_images_base64_and_url() -> None:
    out = convert(messages=[{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://x/y.jpg"}},
    ]}])
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://x/y.jpg"}},
    ]


def test_tools_drop_anthropic_only_keys_and_server_tools() -> None:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
              "properties": {"command": {"type": "string"}}, "additionalProperties": False}
    out = convert(
        tools=[
            {"name": "Bash", "description": "Run", "input_schema": schema,
             "cache_control": {"type": "ephemeral"}, "defer_loading": True, "input_examples": [{}]},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 8},
        ],
        tool_choice={"type": "tool", "name": "web_search"},
    )
    assert out["tools"] == [
        {"type": "function", "function": {"name": "Bash", "description": "Run", "parameters": schema}}
    ]
    assert "tool_choice" not in out  # it named the dropped server tool


def test_only_server_tools_leaves_no_tools_and_no_tool_choice() -> None:
    out = convert(tools=[{"type": "web_search_20250305", "name": "web_search"}], tool_choice={"type": "any"})
    assert "tools" not in out and "tool_choice" not in out


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        ({"type": "tool", "name": "T"}, {"tool_choice": {"type": "function", "function": {"name": "T"}}}),
        ({"type": "auto", "disable_parallel_tool_use": True},
         {"tool_choice": "auto", "parallel_tool_calls": False}),
        ({"type": "any", "disable_parallel_tool_use": True},
         {"tool_choice": "required", "parallel_tool_calls": False}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    out = convert(tools=[{"name": "T", "input_schema": {"type": "object"}}], tool_choice=choice)
    assert {k: out[k] for k in ("tool_choice", "parallel_tool_calls") if k in out} == expected


def test_tool_round_trip_in_history() -> None:
    backend_id = "functions.Bash:0"
    anthropic_id = to_anthropic_tool_id(backend_id)
    out = convert(messages=[
        {"role": "user", "content": "run two"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "plan", "signature": "sig"},
            {"type": "text", "text": "Running."},
            {"type": "tool_use", "id": anthropic_id, "name": "Bash", "input": {"command": "ls"}},
            {"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {"path": "é"}},
        ]},
        {"role": "user", "content": [
            # results out of call order, with an error, block content, an image, then text
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": [
                {"type": "text", "text": "file body"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QQ"}},
            ]},
            {"type": "tool_result", "tool_use_id": anthropic_id, "content": "denied", "is_error": True,
             "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "continue"},
        ]},
    ])
    assert out["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Running.",
            "tool_calls": [
                {"id": backend_id, "type": "function",
                 "function": {"name": "Bash", "arguments": '{"command": "ls"}'}},
                {"id": "toolu_2", "type": "function",
                 "function": {"name": "Read", "arguments": '{"path": "é"}'}},
            ],
            "reasoning_content": "plan",
        },
        {"role": "tool", "tool_call_id": backend_id, "content": "Error: denied"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "file body"},
        {"role": "user", "content": [
            {"type": "text", "text": "[Images returned by tool call toolu_2]"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,QQ"}},
            {"type": "text", "text": "continue"},
        ]},
    ]
    assert "QQ" not in json.dumps([m for m in out["messages"] if m["role"] == "tool"])


def test_assistant_with_only_tool_calls_has_empty_string_content() -> None:
    out = convert(messages=[
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "A", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
    ])
    assert out["messages"][1]["content"] == ""
    assert out["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": ""}


def test_redacted_thinking_dropped_and_reasoning_field_is_a_dialect_knob() -> None:
    messages = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "thinking", "thinking": "t", "signature": "s"},
            {"type": "text", "text": "y"},
        ]},
    ]
    request = validate_request({"model": "m", "max_tokens": 5, "messages": messages})
    out = to_chat_request(request, model="m", dialect=Dialect(reasoning_history_field=None))
    assert out["messages"][1] == {"role": "assistant", "content": "y"}
    assert "opaque" not in json.dumps(out)


def test_consecutive_same_role_messages_merge() -> None:
    out = convert(messages=[
        {"role": "user", "content": "a"},
        {"role": "user", "content": [{"type": "text", "text": "b"}]},
    ])
    assert out["messages"] == [{"role": "user", "content": "a\n\nb"}]


def test_sampling_stop_and_metadata() -> None:
    long_user = json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": "s" * 36})
    out = convert(temperature=0.2, top_p=0.9, top_k=5, stop_sequences=["END"],
                  metadata={"user_id": long_user})
    assert out["temperature"] == 0.2 and out["top_p"] == 0.9
    assert "top_k" not in out  # OpenAI rejects it; a dialect knob turns it on
    assert out["stop"] == ["END"]
    assert len(out["user"]) == 64 and out["user"] != long_user[:64]
    assert convert(metadata={"user_id": "short"})["user"] == "short"


def test_max_tokens_zero_and_field_name() -> None:
    assert convert(max_tokens=0)["max_tokens"] == 1
    request = validate_request({"model": "m", "max_tokens": 7, "messages": [{"role": "user", "content": "x"}]})
    out = to_chat_request(request, model="m", dialect=Dialect(max_tokens_field="max_completion_tokens"))
    assert out["max_completion_tokens"] == 7 and "max_tokens" not in out


def test_unknown_fields_are_not_forwarded() -> None:
    out = convert(context_management={"edits": []}, thinking={"type": "adaptive"}, safeguards={},
                  service_tier="auto", container="c", cache_control={"type": "ephemeral"})
    assert set(out) == {"model", "max_tokens", "messages"}


def test_output_format_becomes_response_format() -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    out = convert(output_config={"effort": "low", "format": {"type": "json_schema", "schema": schema}})
    assert out["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    request = validate_request({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                                "output_format": {"type": "json_schema", "schema": schema}})
    assert to_chat_request(request, model="m", dialect=Dialect(response_format="json_object"))[
        "response_format"] == {"type": "json_object", "schema": schema}
    assert "response_format" not in to_chat_request(request, model="m", dialect=Dialect(response_format=None))


def test_documents_and_search_results_become_text() -> None:
    out = convert(messages=[{"role": "user", "content": [
        {"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain", "data": "hello"}},
        {"type": "search_result", "source": "https://s", "title": "T",
         "content": [{"type": "text", "text": "found"}]},
        {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "inner"}]}},
    ]}])
    text = out["messages"][0]["content"]
    assert "Document: Notes\nhello" in text
    assert "Search result: T (https://s)\nfound" in text
    assert "Document\n\ninner" in text


def pdf_request(data: str, dialect: Dialect | None = None) -> dict[str, Any]:
    request = validate_request({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "document", "title": "Report", "source": {"type": "base64", "media_type": "application/pdf",
                                                            "data": data}},
        {"type": "text", "text": "Summarise."},
    ]}]})
    return to_chat_request(request, model="m", **({"dialect": dialect} if dialect else {}))


def test_pdf_text_is_extracted_for_backends_without_file_parts() -> None:
    content = pdf_request(pdf_b64(["Quarterly revenue rose", "Costs fell"]))["messages"][0]["content"]
    assert content.startswith("Document: Report (PDF, 2 pages)")
    assert "Quarterly revenue rose" in content and "Costs fell" in content
    assert content.endswith("Summarise.")


def test_pdf_without_text_and_unreadable_pdf_become_clear_placeholders() -> None:
    scan = pdf_request(pdf_b64(["", ""]))["messages"][0]["content"]
    assert "PDF of 2 page(s) with no extractable text" in scan
    broken = pdf_request("JVBERi0xLjQKbm9uc2Vuc2U=")["messages"][0]["content"]
    assert "could not be read" in broken and "JVBER" not in broken


def test_pdf_as_file_part_where_the_backend_reads_pdfs() -> None:
    data = pdf_b64(["x"])
    content = pdf_request(data, Dialect(pdf_file_parts=True))["messages"][0]["content"]
    assert content[0] == {"type": "file", "file": {"filename": "Report.pdf",
                                                   "file_data": f"data:application/pdf;base64,{data}"}}
    assert content[1] == {"type": "text", "text": "Summarise."}


@pytest.mark.parametrize(
    ("fields", "style", "expected"),
    [
        ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}}, "reasoning_effort",
         {"reasoning_effort": "high"}),
        ({"thinking": {"type": "adaptive"}}, "reasoning_effort", {"reasoning_effort": "medium"}),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "reasoning_effort", {"reasoning_effort": "low"}),
        ({"thinking": {"type": "enabled", "budget_tokens": 32000}}, "openrouter", {"reasoning": {"effort": "high"}}),
        ({"thinking": {"type": "disabled"}, "output_config": {"effort": "high"}}, "deepseek",
         {"thinking": {"type": "disabled"}}),
        ({"output_config": {"effort": "max"}}, "deepseek",
         {"thinking": {"type": "enabled"}, "reasoning_effort": "high"}),
        ({"thinking": {"type": "disabled"}}, "chat_template_kwargs", {"chat_template_kwargs": {"enable_thinking": False}}),
        ({"thinking": {"type": "adaptive"}}, None, {}),
        ({}, "reasoning_effort", {}),
    ],
)
def test_reasoning_knob(fields: dict[str, Any], style: str | None, expected: dict[str, Any]) -> None:
    request = validate_request({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                                **fields})
    out = to_chat_request(request, model="m", dialect=Dialect(reasoning=style))
    assert {k: v for k, v in out.items() if k not in ("model", "max_tokens", "messages")} == expected


def test_tool_ids_round_trip() -> None:
    for backend_id in ("call_abc", "functions.Bash:0", "call__0_x y", "toolu_enc_trick"):
        anthropic_id = to_anthropic_tool_id(backend_id)
        assert all(ch.isalnum() or ch in "_-" for ch in anthropic_id)
        assert to_backend_tool_id(anthropic_id) == backend_id


ONE = [{"role": "user", "content": "x"}]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "Request body"),
        ({"max_tokens": 1, "messages": []}, "model: Field required"),
        ({"model": "m", "messages": []}, "max_tokens: Field required"),
        ({"model": "m", "max_tokens": "5", "messages": []}, "max_tokens:"),
        ({"model": "m", "max_tokens": True, "messages": []}, "max_tokens:"),
        ({"model": "m", "max_tokens": 1}, "messages: Field required"),
        ({"model": "m", "max_tokens": 1, "messages": {}}, "messages: Input should be a valid list"),
        ({"model": "m", "max_tokens": 1, "messages": [{"role": "bot", "content": "x"}]}, "messages.0.role"),
        ({"model": "m", "max_tokens": 1, "messages": [{"role": "user"}]}, "messages.0.content: Field required"),
        ({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "text"}]}]},
         "messages.0.content.0.text: Field required"),
        ({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [
            {"type": "tool_use", "id": "x", "name": "n", "input": []}]}]}, "messages.0.content.0.input"),
        ({"model": "m", "max_tokens": 1, "messages": []}, "messages: List should have at least 1 item"),
        ({"model": "m", "max_tokens": 1, "messages": ONE, "system": 5}, "system:"),
        ({"model": "m", "max_tokens": 1, "messages": ONE, "temperature": "hot"}, "temperature:"),
        ({"model": "m", "max_tokens": 1, "messages": ONE, "stop_sequences": [1]}, "stop_sequences:"),
        ({"model": "m", "max_tokens": 1, "messages": ONE, "tools": [{"name": "t"}]}, "tools.0.input_schema"),
        ({"model": "m", "max_tokens": 1, "messages": ONE, "tool_choice": {"type": "all"}}, "tool_choice.type"),
        ({"model": "m", "max_tokens": 1, "messages": ONE, "tool_choice": {"type": "tool"}}, "tool_choice.name"),
    ],
)
def test_validation_names_the_field(body: Any, field: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        validate_request(body)
    assert field in info.value.message


def test_count_tokens_request_needs_no_max_tokens() -> None:
    validate_request({"model": "m", "messages": [{"role": "user", "content": "x"}]}, count_tokens=True)


@pytest.mark.parametrize(
    ("block", "path"),
    [
        ({"type": "tool_result", "tool_use_id": "a", "content": [{"type": "text"}]}, "content.0.content.0.text"),
        ({"type": "tool_result", "tool_use_id": "a", "content": [{"type": "text", "text": 5}]}, "content.0.content.0.text"),
        ({"type": "tool_result", "tool_use_id": "a", "content": [{"type": "image", "source": "x"}]},
         "content.0.content.0.source"),
        ({"type": "tool_result", "tool_use_id": "a", "content": [{"type": "document", "source": "x"}]},
         "content.0.content.0.source"),
        ({"type": "document", "source": {"type": "content", "content": 5}}, "content.0.source.content"),
        ({"type": "document", "source": {"type": "content", "content": [{"type": "text"}]}},
         "content.0.source.content.0.text"),
        ({"type": "document", "source": {"type": "base64", "media_type": "application/pdf"}}, "source.data"),
        ({"type": "image", "source": {"type": "url"}}, "content.0.source.url"),
        ({"type": "image", "source": {"type": "gopher"}}, "content.0.source.type"),
        ({"type": "search_result", "content": "abc"}, "content.0.content"),
        ({"type": "search_result", "content": [1]}, "content.0.content.0"),
        ({"type": "search_result", "content": [{"type": "text", "text": 1}]}, "content.0.content.0.text"),
        ({"type": "tool_result", "tool_use_id": "a", "content": [{"type": "search_result", "content": 3}]},
         "content.0.content.0.content"),
    ],
)
def test_nested_blocks_are_validated(block: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        validate_request({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [block]}]})
    assert path in info.value.message


def test_reasoning_survives_merged_assistant_turns() -> None:
    out = convert(messages=[
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "plan", "signature": "s"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"},
                                          {"type": "thinking", "thinking": "more", "signature": "s"},
                                          {"type": "tool_use", "id": "t", "name": "A", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "lone", "signature": "s"}]},
        {"role": "user", "content": "y"},
    ])
    assistants = [m for m in out["messages"] if m["role"] == "assistant"]
    assert len(assistants) == 1  # the reasoning-only turn at the end is dropped
    assert assistants[0]["reasoning_content"] == "plan\n\nmore"
    assert assistants[0]["content"] == "ok" and assistants[0]["tool_calls"][0]["id"] == "t"


def test_stop_sequences_capped_where_the_backend_caps_them() -> None:
    request = validate_request({"model": "m", "max_tokens": 5, "stop_sequences": list("abcdef"),
                                "messages": [{"role": "user", "content": "x"}]})
    assert to_chat_request(request, model="m")["stop"] == list("abcdef")
    assert to_chat_request(request, model="m", dialect=Dialect(max_stop_sequences=4))["stop"] == list("abcd")


def test_tool_names_openai_rejects_are_rewritten_and_mapped_back() -> None:
    from trio_claude_proxy.convert import StreamTranslator, accumulate
    from trio_claude_proxy.convert.ids import tool_name_map

    long_name = "mcp__a_very_long_server_name_for_testing__and_an_even_longer_tool_name_here"
    tools = [{"name": long_name, "input_schema": {"type": "object"}}, {"name": "Bash", "input_schema": {}}]
    out = convert(tools=tools, tool_choice={"type": "tool", "name": long_name}, messages=[
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": long_name, "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]},
    ])
    backend_name = out["tools"][0]["function"]["name"]
    assert len(backend_name) <= 64 and backend_name != long_name
    assert out["tools"][1]["function"]["name"] == "Bash"
    assert out["tool_choice"]["function"]["name"] == backend_name
    assert out["messages"][1]["tool_calls"][0]["function"]["name"] == backend_name
    translator = StreamTranslator(model="m", tool_names=tool_name_map(tools))
    events = translator.start() + translator.feed({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "c1", "function": {"name": backend_name, "arguments": "{}"}}]},
        "finish_reason": "tool_calls"}]}) + translator.finish()
    assert accumulate(events)["content"][0]["name"] == long_name


def test_orphan_duplicate_and_missing_tool_results() -> None:
    out = convert(messages=[
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "A", "input": {}},
                                          {"type": "tool_use", "id": "b", "name": "B", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": "first"},
            {"type": "tool_result", "tool_use_id": "a", "content": "again"},
            {"type": "tool_result", "tool_use_id": "zzz", "content": "orphan"},
        ]},
    ])
    assert out["messages"][2:] == [
        {"role": "tool", "tool_call_id": "a", "content": "first"},
        {"role": "tool", "tool_call_id": "b", "content": "(no result)"},
        {"role": "user", "content": "[Result of tool call a]\nagain\n\n[Result of tool call zzz]\norphan"},
    ]


def test_tool_calls_answered_by_plain_text_get_stubs() -> None:
    out = convert(messages=[
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "A", "input": {}}]},
        {"role": "user", "content": "never mind"},
    ])
    assert out["messages"][2:] == [{"role": "tool", "tool_call_id": "a", "content": "(no result)"},
                                   {"role": "user", "content": "never mind"}]
