"""Backend errors -> Anthropic errors: status, type, retry hints, Claude Code's phrasing."""

from __future__ import annotations

import re

import pytest

from trio_claude_proxy import errors
from trio_claude_proxy.errors import ProxyError, context_overflow_message, error_from_upstream

# Claude Code's own patterns (protocol.md A.7).
PROMPT_TOO_LONG = re.compile(r"prompt is too long[^0-9]*(\d+)\s*tokens?\s*>\s*(\d+)", re.I)
MAX_TOKENS_FIX = re.compile(r"input length and `max_tokens` exceed context limit: (\d+) \+ (\d+) > (\d+)")


def test_base_class_is_abstract() -> None:
    with pytest.raises(TypeError):
        ProxyError("x")


@pytest.mark.parametrize(
    ("status", "error_type", "retry"),
    [
        (400, "invalid_request_error", "false"),
        (401, "authentication_error", "false"),
        (402, "billing_error", "false"),
        (403, "permission_error", "false"),
        (404, "not_found_error", "false"),
        (408, "timeout_error", "true"),
        (413, "request_too_large", "false"),
        (422, "invalid_request_error", "false"),
        (429, "rate_limit_error", "true"),
        (500, "api_error", "true"),
        (502, "api_error", "true"),
        (503, "overloaded_error", "true"),
        (504, "timeout_error", "true"),
        (529, "overloaded_error", "true"),
    ],
)
def test_status_mapping(status: int, error_type: str, retry: str) -> None:
    error = error_from_upstream(status, {"error": {"message": "m"}})
    assert error.error_type == error_type
    assert error.response_headers()["x-should-retry"] == retry
    assert error.body() == {"type": "error", "error": {"type": error_type, "message": f"Backend returned {status}: m"}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": "Unauthorized"}, "Unauthorized"),  # vLLM / SGLang 401
        ({"object": "error", "message": "flat", "type": "400", "code": 400}, "flat"),  # SGLang
        ({"detail": "Invalid API key"}, "Invalid API key"),  # llama-cpp-python
        ("plain text", "plain text"),
        ("", "(empty response)"),
    ],
)
def test_message_from_every_dialect(body: object, message: str) -> None:
    assert error_from_upstream(401, body).message == f"Backend returned 401: {message}"


def test_retry_after_passed_through_and_derived_from_ratelimit_reset() -> None:
    e = error_from_upstream(429, {}, {"retry-after": "7"})
    assert e.headers == {"retry-after": "7"} and e.status == 429
    e = error_from_upstream(429, {}, {"x-ratelimit-reset-requests": "1m30s", "x-ratelimit-reset-tokens": "250ms"})
    assert e.headers == {"retry-after": "90"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'max_tokens' or 'max_completion_tokens' is too large: 64000. This model's maximum context length "
         "is 20000 tokens and your request has 16614 input tokens (64000 > 20000 - 16614). None",
         ("fix", 16614, 64000, 20000)),
        ("This model's maximum context length is 8192 tokens. However, you requested 9000 tokens "
         "(7000 in the messages, 2000 in the completion).", ("fix", 7000, 2000, 8192)),
        ("This model's maximum context length is 8192 tokens. However, you requested 12000 tokens "
         "(10000 in the messages, 2000 in the completion).", ("long", 10000, 8192)),
        ("This model's maximum context length is 128000 tokens. However, your messages resulted in "
         "130000 tokens.", ("long", 130000, 128000)),
        ("request (24071 tokens) exceeds the available context size (8192 tokens), try increasing it",
         ("long", 24071, 8192)),
        ("The input (9000 tokens) is longer than the model's context length (8192 tokens).",
         ("long", 9000, 8192)),
        ("Requested tokens (9377) exceed context window of 8192", ("long", 9377, 8192)),
    ],
)
def test_context_overflow_in_claude_codes_words(text: str, expected: tuple) -> None:
    message = context_overflow_message(text)
    assert message is not None
    if expected[0] == "long":
        match = PROMPT_TOO_LONG.search(message)
        assert match and (int(match[1]), int(match[2])) == expected[1:]
    else:
        match = MAX_TOKENS_FIX.search(message)
        assert match and tuple(map(int, match.groups())) == expected[1:]
    error = error_from_upstream(400, {"error": {"message": text}})
    assert (error.status, error.error_type, error.message) == (400, "invalid_request_error", message)


def test_other_400s_are_not_overflow() -> None:
    assert context_overflow_message("tools.0: bad schema") is None


def test_stream_chunk_errors() -> None:
    assert errors.error_from_stream_chunk({"choices": []}) is None
    e = errors.error_from_stream_chunk({"error": {"message": "x", "code": 429}})
    assert e is not None and e.status == 429
    e = errors.error_from_stream_chunk({"object": "error", "message": "bad", "code": 400})
    assert e is not None and e.status == 400 and "bad" in e.message


@pytest.mark.parametrize(("text", "seconds"), [("6m0s", 360), ("1.5s", 1.5), ("20ms", 0.02), ("3", 3), ("x", None)])
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert errors.parse_duration(text) == seconds


def test_current_vllm_and_llamacpp_overflow_wordings() -> None:
    vllm = ("This model's maximum context length is 32768 tokens. However, your request has 40000 input "
            "tokens. Please reduce the length of the input messages.")
    assert error_from_upstream(400, {"error": {"message": vllm}}).message == (
        "prompt is too long: 40000 tokens > 32768 maximum")
    llamacpp = {"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it",
                          "type": "exceed_context_size_error", "n_prompt_tokens": 24071, "n_ctx": 8192}}
    assert error_from_upstream(400, llamacpp).message == "prompt is too long: 24071 tokens > 8192 maximum"
