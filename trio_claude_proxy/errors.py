"""One error hierarchy, rendered in Anthropic's shape at the boundaries.

Everything the proxy refuses or fails at is a :class:`ProxyError`. Each class
carries the HTTP status and the Anthropic ``error.type`` a client expects
(https://docs.anthropic.com/en/api/errors), so the app renders any of them with
one handler, and the streaming relay turns them into ``event: error``::

    ProxyError                      (abstract: never raised itself)
    ├── InvalidRequest              400 invalid_request_error
    ├── AuthenticationFailed        401 authentication_error
    ├── BillingError                402 billing_error
    ├── PermissionDenied            403 permission_error
    ├── NotFound                    404 not_found_error
    ├── RequestTooLarge             413 request_too_large
    ├── RateLimited                 429 rate_limit_error
    ├── UpstreamError               500 api_error
    ├── UpstreamTimeout             504 timeout_error
    └── Overloaded                  529 overloaded_error

Status and type matter more than the text: the SDKs pick their exception class
and retry policy from the status, and Claude Code compacts its context only when
a 400 says ``prompt is too long: N tokens > M maximum`` (see
:func:`context_overflow_message`).

This module is pure: no I/O, so the converters may raise these too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar


class ProxyError(Exception):
    """Base of every error the proxy reports to a client.

    Args:
        message: the human-readable ``error.message``.
        headers: extra response headers (``retry-after`` and the like).
    """

    status: ClassVar[int]
    error_type: ClassVar[str]
    #: Whether a client should retry; sent as ``x-should-retry``, which both
    #: official SDKs obey over their own status-based policy.
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        if type(self) is ProxyError:
            raise TypeError("ProxyError is abstract; raise one of its subclasses")
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        """The JSON body: ``{"type":"error","error":{"type":..,"message":..}}``."""
        body: dict[str, Any] = {
            "type": "error",
            "error": {"type": self.error_type, "message": self.message},
        }
        if request_id:
            body["request_id"] = request_id
        return body

    def response_headers(self) -> dict[str, str]:
        return {"x-should-retry": "true" if self.retryable else "false", **self.headers}


class InvalidRequest(ProxyError):
    status, error_type = 400, "invalid_request_error"


class AuthenticationFailed(ProxyError):
    status, error_type = 401, "authentication_error"


class BillingError(ProxyError):
    status, error_type = 402, "billing_error"


class PermissionDenied(ProxyError):
    status, error_type = 403, "permission_error"


class NotFound(ProxyError):
    status, error_type = 404, "not_found_error"


class RequestTooLarge(ProxyError):
    status, error_type = 413, "request_too_large"


class RateLimited(ProxyError):
    status, error_type, retryable = 429, "rate_limit_error", True


class UpstreamError(ProxyError):
    status, error_type, retryable = 500, "api_error", True


class UpstreamTimeout(ProxyError):
    status, error_type, retryable = 504, "timeout_error", True


class Overloaded(ProxyError):
    status, error_type, retryable = 529, "overloaded_error", True


_BY_STATUS: dict[int, type[ProxyError]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    402: BillingError,
    403: PermissionDenied,
    404: NotFound,
    413: RequestTooLarge,
    422: InvalidRequest,  # vLLM and FastAPI-based servers validate with 422
    429: RateLimited,
    503: Overloaded,
    504: UpstreamTimeout,
    529: Overloaded,
}

# Headers worth passing from a backend's error response to the client.
_PASSED_HEADERS = ("retry-after", "retry-after-ms")


def error_class_for_status(status: int) -> type[ProxyError]:
    """The class a backend's HTTP status maps to (unknown 4xx: 400; 5xx: 500)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status == 408:
        return UpstreamTimeout
    if 400 <= status < 500:
        return InvalidRequest
    return UpstreamError


def upstream_error_message(body: Any) -> str:
    """Dig the human message out of any backend's error body.

    Handles OpenAI/vLLM ``{"error":{"message":..}}``, vLLM's bare
    ``{"error":"Unauthorized"}``, SGLang's flat ``{"object":"error","message":..}``,
    llama-cpp-python's ``{"detail":..}``, and plain text.
    """
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            msg = err.get("message")
            if isinstance(msg, str) and msg:
                return msg
            return json.dumps(err)[:2000]
        if isinstance(err, str) and err:
            return err
        for key in ("message", "detail"):
            val = body.get(key)
            if isinstance(val, str) and val:
                return val
            if val:
                return json.dumps(val)[:2000]
        return json.dumps(body)[:2000]
    if isinstance(body, str):
        return body.strip()[:2000] or "(empty response)"
    return "(empty response)"


def error_from_upstream(
    status: int, body: Any, headers: Mapping[str, str] | None = None
) -> ProxyError:
    """Map a backend's error response (status, parsed JSON or text) to a ProxyError.

    The message is prefixed so a user can tell a backend's complaint from the
    proxy's own, except for context overflows, which are rephrased in the exact
    words Claude Code acts on.
    """
    message = upstream_error_message(body)
    overflow = context_overflow_message(message) or _overflow_from_fields(body)
    if overflow is not None and status < 500:
        return InvalidRequest(overflow)
    passed = {}
    if headers is not None:
        for name in _PASSED_HEADERS:
            value = headers.get(name)
            if value:
                passed[name] = value
        if status == 429 and "retry-after" not in passed:
            reset = _retry_after_from_ratelimit_headers(headers)
            if reset is not None:
                passed["retry-after"] = reset
    cls = error_class_for_status(status)
    return cls(f"Backend returned {status}: {message}", headers=passed)


def error_from_stream_chunk(chunk: Mapping[str, Any]) -> ProxyError | None:
    """An error carried inside a 200 stream, in any backend's dialect, or None.

    OpenAI and vLLM send ``{"error":{...}}``; SGLang sends a flat
    ``{"object":"error","code":400,...}``.
    """
    err = chunk.get("error")
    if err is None and chunk.get("object") != "error":
        return None
    source = err if isinstance(err, dict) else chunk
    status = 500
    for key in ("status_code", "code", "type"):
        val = source.get(key)
        if isinstance(val, int) and 400 <= val < 600:
            status = val
            break
        if isinstance(val, str) and val.isdigit() and 400 <= int(val) < 600:
            status = int(val)
            break
    return error_from_upstream(status, chunk)


# ---- context overflow --------------------------------------------------------
#
# Claude Code compacts its conversation when a 400 matches
# /prompt is too long[^0-9]*(\d+)\s*tokens?\s*>\s*(\d+)/i, and shrinks max_tokens
# when it matches /input length and `max_tokens` exceed context limit: (\d+) \+
# (\d+) > (\d+)/. Backends word the same condition in their own ways; these
# patterns cover vLLM, SGLang, llama.cpp, llama-cpp-python and OpenAI.

_INT = r"(\d[\d,]*)"
_OVERFLOW_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # vLLM: "'max_tokens' or 'max_completion_tokens' is too large: 64000. This
    # model's maximum context length is 20000 tokens and your request has 16614
    # input tokens (64000 > 20000 - 16614)"
    (
        re.compile(
            r"too large: " + _INT + r".*?maximum context length is " + _INT
            + r" tokens and your request has " + _INT + r" input tokens",
            re.S,
        ),
        "max_input_limit",
    ),
    # vLLM / OpenAI: "maximum context length is X tokens. However, you requested
    # Y tokens (A in the messages, B in the completion)"
    (
        re.compile(
            r"maximum context length is " + _INT + r" tokens.*?\(" + _INT
            + r" in the messages, " + _INT + r" in the completion\)",
            re.S,
        ),
        "limit_input_output",
    ),
    # vLLM: "This model's maximum context length is 32768 tokens. However, your
    # request has 40000 input tokens."
    (
        re.compile(r"maximum context length is " + _INT + r" tokens.*?your request has " + _INT
                   + r" input tokens", re.S),
        "limit_input",
    ),
    # OpenAI: "maximum context length is X tokens. However, your messages resulted in Y tokens"
    (
        re.compile(
            r"maximum context length is " + _INT + r" tokens.*?resulted in " + _INT + r" tokens",
            re.S,
        ),
        "limit_input",
    ),
    # llama.cpp: "request (24071 tokens) exceeds the available context size (8192 tokens)"
    (
        re.compile(r"request \(" + _INT + r" tokens\) exceeds the available context size \("
                   + _INT + r" tokens\)"),
        "input_limit",
    ),
    # SGLang: "The input (X tokens) is longer than the model's context length (Y tokens)"
    (
        re.compile(r"input \(" + _INT + r" tokens\) is longer than the model's context length \("
                   + _INT + r" tokens\)"),
        "input_limit",
    ),
    # llama-cpp-python: "Requested tokens (N) exceed context window of M"
    (
        re.compile(r"Requested tokens \(" + _INT + r"\) exceed context window of " + _INT),
        "input_limit",
    ),
)


def _ints(match: re.Match[str]) -> list[int]:
    return [int(g.replace(",", "")) for g in match.groups()]


def context_overflow_message(text: str) -> str | None:
    """Rephrase a backend's context-overflow complaint the way Claude Code expects.

    Returns None when ``text`` is not about the context window.
    """
    for pattern, shape in _OVERFLOW_PATTERNS:
        match = pattern.search(text)
        if match is None:
            continue
        nums = _ints(match)
        if shape == "max_input_limit":
            max_tokens, limit, prompt = nums
        elif shape == "limit_input_output":
            limit, prompt, max_tokens = nums
        elif shape == "limit_input":
            limit, prompt = nums
            max_tokens = 0
        else:  # input_limit
            prompt, limit = nums
            max_tokens = 0
        if prompt >= limit or max_tokens == 0:
            return f"prompt is too long: {prompt} tokens > {limit} maximum"
        return (
            f"input length and `max_tokens` exceed context limit: "
            f"{prompt} + {max_tokens} > {limit}, decrease input length or `max_tokens` and try again"
        )
    return None


def _overflow_from_fields(body: Any) -> str | None:
    """llama.cpp's current wording carries the numbers only as fields:
    ``{"error":{"type":"exceed_context_size_error","n_prompt_tokens":..,"n_ctx":..}}``."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return None
    prompt, limit = err.get("n_prompt_tokens"), err.get("n_ctx")
    if isinstance(prompt, int) and isinstance(limit, int) and limit > 0:
        return f"prompt is too long: {prompt} tokens > {limit} maximum"
    return None


def _retry_after_from_ratelimit_headers(headers: Mapping[str, str]) -> str | None:
    """Seconds until an OpenAI-style ``x-ratelimit-reset-*`` (``6m0s``, ``1.5s``, ``20ms``)."""
    best: float | None = None
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        value = headers.get(name)
        if not value:
            continue
        seconds = parse_duration(value)
        if seconds is not None and (best is None or seconds > best):
            best = seconds
    if best is None:
        return None
    return str(max(1, int(best + 0.999)))


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(value: str) -> float | None:
    """Parse Go-style durations (``6m0s``, ``1.5s``, ``250ms``) or plain seconds."""
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(value):
        if match.start() != pos:
            return None
        number, unit = float(match.group(1)), match.group(2)
        total += number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
        pos = match.end()
    return total if pos == len(value) and pos > 0 else None
