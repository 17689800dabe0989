"""Models, backends, routing, auth and token counts through the real server."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from trio_claude_proxy.backends import make_backend
from trio_claude_proxy.settings import ModelTarget

from . import fakes
from .fakes import Reply, ScriptedBackend

HI = [{"role": "user", "content": "hi"}]
OK = fakes.completion("ok", usage_={"prompt_tokens": 10, "completion_tokens": 1})
MODELS = [
    {"id": "Qwen/Qwen3-Coder", "object": "model", "created": 1750000000, "max_model_len": 32768},
    {"id": "small-model", "object": "model", "max_model_len": 4096},
]


async def test_discovery_lists_models_in_anthropic_shape_with_aliases(start_proxy: Any) -> None:
    proxy = await start_proxy(models=MODELS, model_map={"claude-qwen-coder": ModelTarget("Qwen/Qwen3-Coder")})
    client = proxy.sdk()
    page = await client.models.list(limit=2)
    ids = [m.id for m in page.data]
    assert ids == ["claude-qwen-coder", "Qwen/Qwen3-Coder"]
    assert page.has_more is True and page.last_id == "Qwen/Qwen3-Coder"
    everything = [m.id async for m in client.models.list(limit=1)]  # the SDK follows after_id
    assert everything == ["claude-qwen-coder", "Qwen/Qwen3-Coder", "small-model"]
    one = await client.models.retrieve("Qwen/Qwen3-Coder")
    assert one.display_name == "Qwen/Qwen3-Coder" and one.created_at.year == 2025
    async with httpx.AsyncClient(base_url=proxy.url) as http:
        raw = (await http.get("/v1/models?limit=1000", headers={"x-api-key": "k"})).json()
        assert raw["data"][1] == {"type": "model", "id": "Qwen/Qwen3-Coder", "display_name": "Qwen/Qwen3-Coder",
                                  "created_at": "2025-06-15T15:06:40Z", "max_input_tokens": 32768}
        assert (await http.get("/v1/models/nope")).json()["error"]["type"] == "not_found_error"
        assert (await http.get("/v1/models?limit=0")).status_code == 400


async def test_unknown_model_404_lists_models_and_case_is_corrected(start_proxy: Any) -> None:
    proxy = await start_proxy([Reply.json(OK)], models=MODELS)
    client = proxy.sdk()
    with pytest.raises(anthropic.NotFoundError) as info:
        await client.messages.create(model="claude-opus-5-5", max_tokens=10, messages=HI)
    assert "Available models: Qwen/Qwen3-Coder, small-model" in info.value.body["error"]["message"]
    await client.messages.create(model="qwen/qwen3-coder", max_tokens=10, messages=HI)
    assert proxy.backend.requests[0]["model"] == "Qwen/Qwen3-Coder"


async def test_families_map_claude_names(start_proxy: Any) -> None:
    proxy = await start_proxy([Reply.json(OK), Reply.json(OK)], models=MODELS,
                              big_model="Qwen/Qwen3-Coder", small_model="small-model")
    message = await proxy.sdk().messages.create(model="claude-opus-5-5", max_tokens=10, messages=HI)
    await proxy.sdk().messages.create(model="claude-haiku-5-5", max_tokens=10, messages=HI)
    assert [r["model"] for r in proxy.backend.requests] == ["Qwen/Qwen3-Coder", "small-model"]
    assert message.model == "claude-opus-5-5"  # the client sees the name it asked for


async def test_max_tokens_is_clamped_to_the_context_window(start_proxy: Any) -> None:
    proxy = await start_proxy([Reply.json(OK)], models=MODELS)
    await proxy.sdk().messages.create(model="small-model", max_tokens=32000, messages=HI, timeout=60)
    sent = proxy.backend.requests[0]["max_tokens"]
    assert 4000 < sent < 4096  # the window minus the prompt
    with pytest.raises(anthropic.BadRequestError) as info:
        await proxy.sdk().messages.create(model="small-model", max_tokens=10,
                                          messages=[{"role": "user", "content": "word " * 5000}])
    assert info.value.body["error"]["message"].startswith("prompt is too long: ")
    assert info.value.body["error"]["message"].endswith("tokens > 4096 maximum")
    assert len(proxy.backend.requests) == 1  # refused up front


async def start_two(start_proxy: Any, gpu: ScriptedBackend, cloud: ScriptedBackend, **gpu_knobs: Any) -> Any:
    """A vLLM backend "gpu" (falling back as configured) and an OpenRouter one, "cloud"."""
    backends = (make_backend("gpu", "http://gpu/v1", preset="vllm", **gpu_knobs),
                make_backend("cloud", "http://cloud/v1", preset="openrouter", key="or-key"))
    return await start_proxy(scripted={"gpu": gpu, "cloud": cloud}, backends=backends)


async def test_requests_route_by_model_to_the_backend_serving_it(start_proxy: Any) -> None:
    gpu = ScriptedBackend([Reply.json(OK)], models=[{"id": "qwen"}])
    cloud = ScriptedBackend([Reply.json(OK)], models=[{"id": "anthropic/claude-x", "context_length": 200000}])
    proxy = await start_two(start_proxy, gpu, cloud)
    client = proxy.sdk()
    await client.messages.create(model="anthropic/claude-x", max_tokens=10, messages=HI,
                                 thinking={"type": "enabled", "budget_tokens": 4000})
    await client.messages.create(model="qwen", max_tokens=10, messages=HI, extra_body={"top_k": 5})
    assert cloud.requests[0]["model"] == "anthropic/claude-x"
    assert cloud.requests[0]["reasoning"] == {"effort": "medium"}  # the OpenRouter preset
    assert cloud.headers[0]["authorization"] == "Bearer or-key"  # its configured key
    assert gpu.requests[0]["top_k"] == 5  # the vLLM preset forwards top_k
    assert gpu.headers[0]["authorization"] == "Bearer test-key"  # no key configured: forwarded


@pytest.mark.parametrize("stream", [True, False])
async def test_fallback_only_before_anything_was_sent(start_proxy: Any, stream: bool) -> None:
    body = fakes.sse([fakes.text("from cloud"), fakes.chunk({}, "stop")])
    gpu = ScriptedBackend([Reply.json({"error": {"message": "no capacity"}}, 503),
                           Reply.json({"error": {"message": "bad"}}, 400)])
    cloud = ScriptedBackend([Reply.stream(body) if stream else Reply.json(fakes.completion("from cloud"))])
    proxy = await start_two(start_proxy, gpu, cloud, fallback="cloud", fallback_model="backup-model")
    client = proxy.sdk()
    if stream:
        async with client.messages.stream(model="m", max_tokens=10, messages=HI) as s:
            message = await s.get_final_message()
    else:
        message = await client.messages.create(model="m", max_tokens=10, messages=HI)
    assert message.content[0].text == "from cloud"
    assert cloud.requests[0]["model"] == "backup-model"
    with pytest.raises(anthropic.BadRequestError):  # a 400 is the client's problem: no fallback
        await client.messages.create(model="m", max_tokens=10, messages=HI)
    assert len(cloud.requests) == 1


async def test_no_fallback_once_the_stream_has_started(start_proxy: Any) -> None:
    broken = fakes.sse([fakes.text("partial")], done=False)  # ends without finish_reason
    gpu = ScriptedBackend([Reply.stream(broken)])
    cloud = ScriptedBackend([Reply.json(OK)])
    proxy = await start_two(start_proxy, gpu, cloud, fallback="cloud")
    with pytest.raises(anthropic.APIStatusError) as info:
        async with proxy.sdk().messages.stream(model="m", max_tokens=10, messages=HI) as s:
            await s.get_final_message()
    assert info.value.body["error"]["type"] == "api_error"
    assert cloud.requests == []


async def test_custom_headers_and_azure(start_proxy: Any) -> None:
    azure = ScriptedBackend([Reply.json(OK)])
    backends = (make_backend("az", "https://az/openai", preset="azure", key="azure-key",
                             api_version="2024-10-21", headers={"X-Team": "blue"}),)
    proxy = await start_proxy(scripted={"az": azure}, backends=backends)
    await proxy.sdk().messages.create(model="gpt-4o", max_tokens=10, messages=HI, stop_sequences=list("abcdef"))
    assert azure.urls[0] == "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    assert azure.headers[0]["api-key"] == "azure-key" and "authorization" not in azure.headers[0]
    assert azure.headers[0]["x-team"] == "blue"
    sent = azure.requests[0]
    assert sent["max_completion_tokens"] == 10 and sent["stop"] == list("abcd")


async def test_client_keys_gate_the_proxy(start_proxy: Any) -> None:
    proxy = await start_proxy([Reply.json(OK)], backend_key="backend-secret", client_keys=("team-a", "team-b"))
    body = {"model": "m", "max_tokens": 5, "messages": HI}
    async with httpx.AsyncClient(base_url=proxy.url) as http:
        denied = await http.post("/v1/messages", json=body, headers={"x-api-key": "team-c"})
        assert denied.status_code == 401 and denied.json()["error"]["type"] == "authentication_error"
        assert (await http.post("/v1/messages", json=body)).status_code == 401
        assert (await http.get("/v1/models", headers={"x-api-key": "nope"})).status_code == 401
        allowed = await http.post("/v1/messages", json=body, headers={"authorization": "Bearer team-b"})
        assert allowed.status_code == 200
    assert proxy.backend.headers[0]["authorization"] == "Bearer backend-secret"


async def test_exact_counts_from_the_backend_tokenizer(start_proxy: Any) -> None:
    stream = fakes.sse([fakes.text("x"), fakes.chunk({}, "stop")])
    gpu = ScriptedBackend([Reply.stream(stream)], routes={"/tokenize": lambda body: {"count": 4321,
                                                                                      "max_model_len": 8192}})
    cloud = ScriptedBackend()
    proxy = await start_two(start_proxy, gpu, cloud)
    client = proxy.sdk()
    counted = await client.messages.count_tokens(model="m", messages=HI, tools=[
        {"name": "T", "input_schema": {"type": "object"}}])
    assert counted.input_tokens == 4321
    method, path, sent = gpu.other[-1]
    assert (method, path) == ("POST", "/tokenize")  # the server root, not /v1
    assert sent["messages"][-1] == {"role": "user", "content": "hi"} and sent["tools"]
    async with client.messages.stream(model="m", max_tokens=10, messages=HI) as s:
        message = await s.get_final_message()
    assert message.usage.input_tokens == 4321  # message_start carried the exact count


async def test_estimate_is_calibrated_by_reported_usage(start_proxy: Any) -> None:
    text = "calibrate " * 300
    proxy = await start_proxy([Reply.json(fakes.completion("ok", usage_={"prompt_tokens": 2 * n,
                                                                         "completion_tokens": 1}))
                               for n in [0]])
    client = proxy.sdk()
    before = (await client.messages.count_tokens(model="m", messages=[{"role": "user", "content": text}])).input_tokens
    # Teach it: the backend reports twice our estimate.
    proxy.backend._replies = [Reply.json(fakes.completion("ok", usage_={"prompt_tokens": 2 * before,
                                                                        "completion_tokens": 1}))
                              for _ in range(20)]
    for _ in range(20):
        await client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": text}])
    after = (await client.messages.count_tokens(model="m", messages=[{"role": "user", "content": text}])).input_tokens
    assert after == pytest.approx(2 * before, rel=0.05)


async def test_billing_header_is_stripped_unless_disabled(start_proxy: Any) -> None:
    system = [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.329.0a8; cc_entrypoint=sdk-cli;"},
              {"type": "text", "text": "You are a Claude agent."}]
    for strip, expected in ((True, "You are a Claude agent."),
                            (False, system[0]["text"] + "\n\nYou are a Claude agent.")):
        proxy = await start_proxy([Reply.json(OK)], strip_billing_header=strip)
        await proxy.sdk().messages.create(model="m", max_tokens=5, messages=HI, system=system)
        assert proxy.backend.requests[0]["messages"][0] == {"role": "system", "content": expected}


LONG_SYSTEM = "# Identity\nYou are a coding agent.\n\n" + "".join(
    f"# Section {i}\n" + "Rule text that goes on. " * 80 + "\n<example>\nuser: hi\n</example>\n\n" for i in range(8))


async def test_compact_trims_the_system_prompt_only(start_proxy: Any) -> None:
    proxy = await start_proxy([Reply.json(OK)], prompt_compression="compact", compact_budget=500)
    user_text = "please keep this " * 200
    tools = [{"name": "T", "description": "d " * 300, "input_schema": {"type": "object"}}]
    await proxy.sdk().messages.create(model="m", max_tokens=5, system=LONG_SYSTEM, tools=tools,
                                      messages=[{"role": "user", "content": user_text}])
    sent = proxy.backend.requests[0]
    system = sent["messages"][0]["content"]
    assert system.startswith("# Identity\nYou are a coding agent.")
    assert "<example>" not in system and len(system) < len(LONG_SYSTEM) / 3
    assert sent["messages"][1]["content"] == user_text
    assert sent["tools"][0]["function"]["description"] == "d " * 300


async def test_summarize_asks_the_backend_once_and_falls_back_to_compact(start_proxy: Any) -> None:
    summary = fakes.completion("Be a terse coding agent.")
    proxy = await start_proxy([Reply.json(summary), Reply.json(OK), Reply.json(OK)],
                              prompt_compression="summarize", compact_budget=500)
    client = proxy.sdk()
    for _ in range(2):
        await client.messages.create(model="m", max_tokens=5, system=LONG_SYSTEM, messages=HI)
    sent = proxy.backend.requests
    assert len(sent) == 3  # one summary call, cached for the second request
    assert sent[0]["messages"][1]["content"] == LONG_SYSTEM
    assert sent[1]["messages"][0] == {"role": "system", "content": "Be a terse coding agent."}
    assert sent[2]["messages"][0] == sent[1]["messages"][0]
    failing = await start_proxy([Reply.json({"error": {"message": "down"}}, 500), Reply.json(OK)],
                                prompt_compression="summarize", compact_budget=500)
    await failing.sdk().messages.create(model="m", max_tokens=5, system=LONG_SYSTEM, messages=HI)
    assert failing.backend.requests[1]["messages"][0]["content"].startswith("# Identity")


async def test_anthropic_keys_never_reach_the_tokenizer(start_proxy: Any) -> None:
    gpu = ScriptedBackend(routes={"/tokenize": lambda body: {"count": 7}})
    proxy = await start_two(start_proxy, gpu, ScriptedBackend())
    async with httpx.AsyncClient(base_url=proxy.url) as http:
        counted = await http.post("/v1/messages/count_tokens", headers={"x-api-key": "sk-ant-SECRET"},
                                  json={"model": "m", "messages": HI})
        refused = await http.post("/v1/messages", headers={"x-api-key": "sk-ant-SECRET"},
                                  json={"model": "m", "max_tokens": 5, "messages": HI})
    assert counted.status_code == 200 and counted.json()["input_tokens"] != 7  # estimated instead
    assert refused.status_code == 401
    assert all("sk-ant" not in json.dumps(h) for h in gpu.headers)
    assert not any(path == "/tokenize" for _, path, _ in gpu.other)


async def test_the_fallback_gets_a_request_fitted_to_it(start_proxy: Any) -> None:
    gpu = ScriptedBackend([Reply.json({"error": {"message": "busy"}}, 503)])
    cloud = ScriptedBackend([Reply.json(fakes.completion("ok", usage_={"prompt_tokens": 50,
                                                                        "completion_tokens": 1}))])
    backends = (make_backend("gpu", "http://gpu/v1", fallback="cloud", fallback_model="backup"),
                make_backend("cloud", "http://cloud/v1", preset="openai", key="k", models=("backup",),
                             context_length=2000))
    proxy = await start_proxy(scripted={"gpu": gpu, "cloud": cloud}, backends=backends)
    await proxy.sdk().messages.create(model="m", max_tokens=32000, messages=HI, timeout=60)
    sent = cloud.requests[0]
    assert sent["model"] == "backup"
    assert "max_tokens" not in sent and 1900 < sent["max_completion_tokens"] < 2000
    assert len(gpu.requests) == 1


async def test_model_lists_created_in_milliseconds_do_not_break_listing(start_proxy: Any) -> None:
    proxy = await start_proxy(models=[{"id": "m", "created": 1750000000000}, {"id": "n", "created": 10**30}])
    async with httpx.AsyncClient(base_url=proxy.url) as http:
        page = (await http.get("/v1/models")).json()
    assert [e["created_at"] for e in page["data"]] == ["2025-06-15T15:06:40Z", "1970-01-01T00:00:00Z"]


async def test_failed_retry_is_not_remembered(start_proxy: Any) -> None:
    refusal = {"error": {"message": "Unsupported parameter: 'max_tokens'. Use 'max_completion_tokens'."}}
    proxy = await start_proxy([Reply.json(refusal, 400), Reply.json({"error": {"message": "other"}}, 400),
                               Reply.json(OK)])
    with pytest.raises(anthropic.BadRequestError):
        await proxy.sdk().messages.create(model="m", max_tokens=5, messages=HI)
    await proxy.sdk().messages.create(model="m", max_tokens=5, messages=HI)
    assert "max_tokens" in proxy.backend.requests[2]


async def test_unusable_summaries_are_not_cached(start_proxy: Any) -> None:
    truncated = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "<think>hm</think>Be conc"},
                              "finish_reason": "length"}]}
    thinking = fakes.completion("<think>planning</think>\n\nBe a terse agent.")
    proxy = await start_proxy([Reply.json(truncated), Reply.json(OK), Reply.json(thinking), Reply.json(OK)],
                              prompt_compression="summarize", compact_budget=500)
    for _ in range(2):
        await proxy.sdk().messages.create(model="m", max_tokens=5, system=LONG_SYSTEM, messages=HI)
    sent = proxy.backend.requests
    assert sent[1]["messages"][0]["content"].startswith("# Identity")  # compacted, not the bad summary
    assert sent[3]["messages"][0] == {"role": "system", "content": "Be a terse agent."}
