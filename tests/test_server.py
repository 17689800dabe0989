"""The real app on Hypercorn (loopback), a scripted backend, the official SDK as the client."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from . import fakes
from .fakes import Reply
from .protocol import as_transcript_blocks, assert_valid_stream
from .transcripts import TRANSCRIPTS, Transcript

HI = [{"role": "user", "content": "hi"}]
BASH_TOOL = {
    "name": "Bash",
    "description": "Run a command",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
}
TEXT_AND_TOOL = fakes.sse([
    fakes.chunk({"role": "assistant", "content": ""}),
    fakes.text("I'll list "),
    fakes.text("the files."),
    fakes.tool_call(0, id="call_1", name="Bash"),
    fakes.tool_call(0, arguments='{"comm'),
    fakes.tool_call(0, arguments='and": "ls"}'),
    fakes.chunk({}, "tool_calls"),
    fakes.usage(30, 12, cached=10),
])
EXPECTED_CONTENT = [
    {"type": "text", "text": "I'll list the files."},
    {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}},
]


def content_of(message: Any) -> list[dict[str, Any]]:
    return [b.model_dump(exclude_none=True, exclude={"citations", "caller"}) for b in message.content]


async def test_health_and_probes(start_proxy: Any) -> None:
    proxy = await start_proxy()
    async with httpx.AsyncClient(base_url=proxy.url) as http:
        health = await http.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok" and health.json()["version"]
        assert health.headers["request-id"].startswith("req_")
        for method, path in [("HEAD", "/"), ("GET", "/"), ("HEAD", "/api/hello")]:
            assert (await http.request(method, path)).status_code == 200
        missing = await http.get("/v1/nope")
        assert missing.status_code == 404
        assert missing.json()["type"] == "error"
        assert missing.json()["error"]["type"] == "not_found_error"
        wrong_method = await http.get("/v1/messages")
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error"]["type"] == "invalid_request_error"


async def test_streamed_text_and_tool_call_parse_exactly(start_proxy: Any) -> None:
    proxy = await start_proxy([Reply.stream(TEXT_AND_TOOL, pieces=7)])
    client = proxy.sdk()
    events = []
    async with client.messages.stream(model="claude-opus-5-5", max_tokens=1000, messages=HI,
                                      tools=[BASH_TOOL]) as stream:
        async for event in stream:
            events.append(event.type)
        message = await stream.get_final_message()
    assert content_of(message) == EXPECTED_CONTENT
    assert message.stop_reason == "tool_use"
    assert message.model == "claude-opus-5-5"
    assert message.usage.input_tokens == 20 and message.usage.cache_read_input_tokens == 10
    assert message.usage.output_tokens == 12
    assert events[0] == "message_start" and events[-1] == "message_stop"
    sent = proxy.backend.requests[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["tools"][0]["function"]["name"] == "Bash"
    assert proxy.backend.headers[0]["authorization"] == "Bearer test-key"


async def test_non_streamed_text_and_tool_call(start_proxy: Any) -> None:
    body = fakes.completion(
        "I'll list the files.",
        tool_calls=[{"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": '{"command": "ls"}'}}],
        finish="tool_calls",
        usage_={"prompt_tokens": 30, "completion_tokens": 12, "prompt_tokens_details": {"cached_tokens": 10}},
    )
    proxy = await start_proxy([Reply.json(body)])
    message = await proxy.sdk().messages.create(model="m", max_tokens=100, messages=HI, tools=[BASH_TOOL])
    assert content_of(message) == EXPECTED_CONTENT
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (20, 12)
    assert message._request_id and message._request_id.startswith("req_")
    assert "stream" not in proxy.backend.requests[0]


@pytest.mark.parametrize("transcript", TRANSCRIPTS, ids=lambda t: t.name)
async def test_sdk_parses_every_transcript(start_proxy: Any, transcript: Transcript) -> None:
    proxy = await start_proxy([Reply.stream(transcript.body, pieces=5)])
    client = proxy.sdk()
    kwargs: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": HI}
    if transcript.stop_sequences:
        kwargs["stop_sequences"] = list(transcript.stop_sequences)
    if transcript.error_type:
        with pytest.raises(anthropic.APIStatusError) as info:
            async with client.messages.stream(**kwargs) as stream:
                await stream.get_final_message()
        assert info.value.body["error"]["type"] == transcript.error_type
        return
    async with client.messages.stream(**kwargs) as stream:
        message = await stream.get_final_message()
    assert message.stop_reason == transcript.stop_reason
    assert message.stop_sequence == transcript.stop_sequence
    assert as_transcript_blocks(content_of(message)) == transcript.content


async def test_raw_stream_headers_and_grammar(start_proxy: Any) -> None:
    proxy = await start_proxy([Reply.stream(TEXT_AND_TOOL)])
    async with httpx.AsyncClient(base_url=proxy.url) as http:
        response = await http.post("/v1/messages?beta=true", headers={"x-api-key": "k"},
                                   json={"model": "m", "max_tokens": 5, "stream": True, "messages": HI})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers["request-id"].startswith("req_")
    events = []
    for block in response.text.split("\n\n"):
        if block:
            name, data = block.split("\n")
            event = json.loads(data.removeprefix("data: "))
            assert name == f"event: {event['type']}"
            events.append(event)
    assert_valid_stream(events)


@pytest.mark.parametrize(
    ("reply", "status", "error_type", "exc"),
    [
        (Reply.json({"error": {"message": "slow down"}}, 429, {"retry-after": "3"}), 429, "rate_limit_error",
         anthropic.RateLimitError),
        (Reply.json({"error": "Unauthorized"}, 401), 401, "authentication_error", anthropic.AuthenticationError),
        (Reply.json({"error": {"message": "no such model"}}, 404), 404, "not_found_error", anthropic.NotFoundError),
        (Reply.json({"error": {"message": "busy"}}, 503), 529, "overloaded_error", anthropic.InternalServerError),
        (Reply.json({"error": {"message": "boom"}}, 500), 500, "api_error", anthropic.InternalServerError),
        (Reply(502, [(0, b"<html>Bad Gateway</html>")], {"content-type": "text/html"}), 500, "api_error",
         anthropic.InternalServerError),
    ],
)
@pytest.mark.parametrize("stream", [True, False])
async def test_backend_errors_keep_their_status(
    start_proxy: Any, reply: Reply, status: int, error_type: str, exc: type, stream: bool
) -> None:
    proxy = await start_proxy([reply])
    with pytest.raises(exc) as info:
        if stream:
            async with proxy.sdk().messages.stream(model="m", max_tokens=5, messages=HI) as s:
                await s.get_final_message()
        else:
            await proxy.sdk().messages.create(model="m", max_tokens=5, messages=HI)
    assert info.value.status_code == status
    assert info.value.body["error"]["type"] == error_type
    assert info.value.request_id and info.value.request_id.startswith("req_")
    if status == 429:
        assert info.value.response.headers["retry-after"] == "3"
        assert info.value.response.headers["x-should-retry"] == "true"


async def test_context_overflow_is_phrased_for_claude_code(start_proxy: Any) -> None:
    overflow = {"error": {"code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": 24071, "n_ctx": 8192,
                          "message": "request (24071 tokens) exceeds the available context size (8192 tokens)"}}
    proxy = await start_proxy([Reply.json(overflow, 400)])
    with pytest.raises(anthropic.BadRequestError) as info:
        await proxy.sdk().messages.create(model="m", max_tokens=5, messages=HI)
    assert info.value.body["error"]["message"] == "prompt is too long: 24071 tokens > 8192 maximum"


@pytest.mark.parametrize("stream", [True, False])
async def test_unreachable_backend_is_a_retryable_500(start_proxy: Any, stream: bool) -> None:
    proxy = await start_proxy([Reply.refused()])
    async with httpx.AsyncClient(base_url=proxy.url) as http:
        response = await http.post("/v1/messages", headers={"x-api-key": "k"},
                                   json={"model": "m", "max_tokens": 5, "messages": HI, "stream": stream})
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "api_error"
    assert "connect" in response.json()["error"]["message"].lower()
    assert response.headers["x-should-retry"] == "true"


async def test_bad_requests_get_anthropic_errors(start_proxy: Any) -> None:
    proxy = await start_proxy(max_body_bytes=1000)
    async with httpx.AsyncClient(base_url=proxy.url, headers={"x-api-key": "k"}) as http:
        bad_json = await http.post("/v1/messages", content=b"{nope")
        assert bad_json.status_code == 400
        assert bad_json.json()["error"]["type"] == "invalid_request_error"
        assert "JSON" in bad_json.json()["error"]["message"]
        missing = await http.post("/v1/messages", json={"model": "m", "messages": HI})
        assert missing.status_code == 400
        assert missing.json()["error"]["message"] == "max_tokens: Field required"
        huge = await http.post("/v1/messages", content=b"x" * 5000)
        assert huge.status_code == 413
        assert huge.json()["error"]["type"] == "request_too_large"
        chunked = await http.post("/v1/messages", content=_chunks(b"y" * 5000))
        assert chunked.status_code == 413
    assert proxy.backend.requests == []


async def _chunks(data: bytes) -> Any:
    for i in range(0, len(data), 500):
        yield data[i : i + 500]


async def test_keys(start_proxy: Any) -> None:
    replies = [Reply.json(fakes.completion("ok")) for _ in range(3)]
    proxy = await start_proxy(replies)
    body = {"model": "m", "max_tokens": 5, "messages": HI}
    async with httpx.AsyncClient(base_url=proxy.url) as http:
        none = await http.post("/v1/messages", json=body)
        assert none.status_code == 401 and none.json()["error"]["type"] == "authentication_error"
        anthropic_key = await http.post("/v1/messages", json=body, headers={"x-api-key": "sk-ant-api03-xyz"})
        assert anthropic_key.status_code == 401 and "sk-ant" in anthropic_key.json()["error"]["message"]
        assert (await http.post("/v1/messages", json=body, headers={"authorization": "Bearer tok"})).status_code == 200
        assert (await http.post("/v1/messages", json=body, headers={"x-api-key": "key2"})).status_code == 200
    assert [h["authorization"] for h in proxy.backend.headers] == ["Bearer tok", "Bearer key2"]

    fixed = await start_proxy([Reply.json(fakes.completion("ok"))], backend_key="backend-secret")
    async with httpx.AsyncClient(base_url=fixed.url) as http:
        assert (await http.post("/v1/messages", json=body)).status_code == 200
    assert fixed.backend.headers[0]["authorization"] == "Bearer backend-secret"


async def test_count_tokens(start_proxy: Any) -> None:
    proxy = await start_proxy()
    client = proxy.sdk()
    small = await client.messages.count_tokens(model="m", messages=HI)
    bigger = await client.messages.count_tokens(model="m", messages=[{"role": "user", "content": "hi " * 500}])
    with_tools = await client.messages.count_tokens(model="m", messages=HI, tools=[BASH_TOOL],
                                                    system="You are terse.")
    assert 0 < small.input_tokens < 20
    assert 490 < bigger.input_tokens - small.input_tokens < 520
    assert with_tools.input_tokens > small.input_tokens + 20
    assert proxy.backend.requests == []  # counted locally


async def test_stream_request_answered_with_json_still_streams(start_proxy: Any) -> None:
    proxy = await start_proxy([Reply.json(fakes.completion("plain"))])
    async with proxy.sdk().messages.stream(model="m", max_tokens=5, messages=HI) as stream:
        message = await stream.get_final_message()
    assert content_of(message) == [{"type": "text", "text": "plain"}]


async def test_system_messages_inside_messages_are_accepted(start_proxy: Any) -> None:
    proxy = await start_proxy([Reply.json(fakes.completion("ok"))])
    async with httpx.AsyncClient(base_url=proxy.url) as http:
        response = await http.post("/v1/messages?beta=true", headers={"x-api-key": "k"}, json={
            "model": "m", "max_tokens": 5, "system": [{"type": "text", "text": "S"}],
            "messages": [{"role": "user", "content": "u"},
                         {"role": "system", "content": [{"type": "text", "text": "M"}], "output_config": {}}],
        })
    assert response.status_code == 200
    assert proxy.backend.requests[0]["messages"][0] == {"role": "system", "content": "S\n\nM"}


async def test_max_completion_tokens_retry_is_remembered_per_model(start_proxy: Any) -> None:
    refusal = {"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                                    "Use 'max_completion_tokens' instead.", "type": "invalid_request_error",
                         "param": "max_tokens", "code": "unsupported_parameter"}}
    ok = fakes.completion("ok")
    proxy = await start_proxy([Reply.json(refusal, 400), Reply.json(ok),
                               Reply.stream(fakes.sse([fakes.text("s"), fakes.chunk({}, "stop")]))])
    client = proxy.sdk()
    first = await client.messages.create(model="o-model", max_tokens=50, messages=HI)
    assert content_of(first) == [{"type": "text", "text": "ok"}]
    async with client.messages.stream(model="o-model", max_tokens=60, messages=HI) as stream:
        await stream.get_final_message()
    sent = proxy.backend.requests
    assert sent[0]["max_tokens"] == 50
    assert sent[1]["max_completion_tokens"] == 50 and "max_tokens" not in sent[1]
    assert sent[2]["max_completion_tokens"] == 60 and "max_tokens" not in sent[2]  # remembered
    assert len(sent) == 3


async def test_idle_connections_close_after_a_response(start_proxy: Any) -> None:
    import trio

    proxy = await start_proxy(keep_alive_timeout=1.0)
    host, port = proxy.url.removeprefix("http://").rsplit(":", 1)
    for request in (b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n", b"GET /nope HTTP/1.1\r\nhost: x\r\n\r\n"):
        stream = await trio.open_tcp_stream(host, int(port))
        await stream.send_all(request)
        received = b""
        with trio.fail_after(10):  # the server must close the idle connection (after ~1 s)
            while chunk := await stream.receive_some(4096):
                received += chunk
        assert received.startswith(b"HTTP/1.1 ")
        await stream.aclose()


async def test_unencodable_input_is_not_a_500(start_proxy: Any) -> None:
    proxy = await start_proxy([Reply.json(fakes.completion("ok"))])
    body = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"\\ud800 lone"}]}'
    async with httpx.AsyncClient(base_url=proxy.url) as http:
        ok = await http.post("/v1/messages", content=body, headers={"x-api-key": "k", "content-type": "application/json"})
        assert ok.status_code == 200
        bad_key = await http.post("/v1/messages", json={"model": "m", "max_tokens": 5, "messages": HI},
                                  headers={"x-api-key": b"k\xe9y"})
        assert bad_key.status_code == 401 and bad_key.json()["error"]["type"] == "authentication_error"
    assert proxy.backend.requests[0]["messages"][0]["content"] == "\ud800 lone"
