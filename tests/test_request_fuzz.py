"""Property: nothing a client sends makes the request path fail other than with a 400.

Hypothesis builds Messages requests that are *almost* right: every field and
block type Claude Code and the SDKs use, with values swapped at random for
other JSON values (wrong types, nulls, empty lists, nested garbage). Whatever
validation lets through must translate; whatever it refuses must be an
InvalidRequest naming a field. A crash here would be a 500 that every client
retries.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_claude_proxy import prompt
from trio_claude_proxy.convert import Dialect, StreamTranslator, to_chat_request, validate_request
from trio_claude_proxy.convert.ids import tool_name_map
from trio_claude_proxy.errors import InvalidRequest
from trio_claude_proxy.tokens import count_chat_tokens

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually the right shape; about one time in 25, any JSON value instead."""
    return st.integers(0, 24).flatmap(lambda n: JSON if n == 0 else value)


TEXT = maybe(st.fixed_dictionaries({"type": st.just("text"), "text": maybe(st.text(max_size=10))}))
SOURCE = maybe(st.one_of(
    st.fixed_dictionaries({"type": st.just("base64"), "media_type": st.sampled_from(["image/png", "application/pdf",
                                                                                     "text/plain"]),
                           "data": maybe(st.sampled_from(["QQ==", "JVBERi0=", "!!"]))}),
    st.fixed_dictionaries({"type": st.just("url"), "url": maybe(st.just("https://x/y"))}),
    st.fixed_dictionaries({"type": st.just("text"), "data": maybe(st.text(max_size=5))}),
    st.fixed_dictionaries({"type": st.just("content"), "content": maybe(st.lists(TEXT, max_size=2))}),
))
IMAGE = st.fixed_dictionaries({"type": st.just("image"), "source": SOURCE})
DOCUMENT = st.fixed_dictionaries({"type": st.just("document"), "source": SOURCE, "title": maybe(st.text(max_size=4))})
SEARCH = st.fixed_dictionaries({"type": st.just("search_result"), "source": maybe(st.text(max_size=4)),
                                "title": maybe(st.text(max_size=4)), "content": maybe(st.lists(TEXT, max_size=2))})
NESTED = st.one_of(TEXT, IMAGE, DOCUMENT, SEARCH,
                   st.fixed_dictionaries({"type": st.just("tool_reference"), "tool_name": maybe(st.text(max_size=4))}))
TOOL_USE = st.fixed_dictionaries({"type": st.just("tool_use"), "id": maybe(st.sampled_from(["t1", "t2", "a.b:0"])),
                                  "name": maybe(st.sampled_from(["Bash", "x" * 70])), "input": maybe(JSON)})
TOOL_RESULT = st.fixed_dictionaries({
    "type": st.just("tool_result"), "tool_use_id": maybe(st.sampled_from(["t1", "t2", "zz"])),
    "content": maybe(st.one_of(st.text(max_size=5), st.lists(NESTED, max_size=3))), "is_error": maybe(st.booleans()),
})
THINKING = st.fixed_dictionaries({"type": st.just("thinking"), "thinking": maybe(st.text(max_size=5)),
                                  "signature": maybe(st.sampled_from(["s", "tcp1_d_W10", "tcp1_d_!!"]))})
BLOCK = maybe(st.one_of(TEXT, IMAGE, DOCUMENT, SEARCH, TOOL_USE, TOOL_RESULT, THINKING,
                        st.fixed_dictionaries({"type": st.sampled_from(["redacted_thinking", "server_tool_use",
                                                                        "mystery"])})))
MESSAGE = maybe(st.fixed_dictionaries({
    "role": maybe(st.sampled_from(["user", "assistant", "system"])),
    "content": maybe(st.one_of(st.text(max_size=8), st.lists(BLOCK, max_size=4))),
}))
TOOL = maybe(st.one_of(
    st.fixed_dictionaries({"name": maybe(st.sampled_from(["Bash", "mcp__" + "y" * 70])),
                           "input_schema": maybe(st.just({"type": "object"}))}),
    st.fixed_dictionaries({"type": st.just("web_search_20250305"), "name": st.just("web_search")}),
))
REQUEST = st.fixed_dictionaries(
    {"model": maybe(st.just("m")), "max_tokens": maybe(st.integers(0, 10)),
     "messages": maybe(st.lists(MESSAGE, min_size=1, max_size=5))},
    optional={
        "system": maybe(st.one_of(st.text(max_size=8), st.lists(TEXT, max_size=2))),
        "tools": maybe(st.lists(TOOL, max_size=3)),
        "tool_choice": maybe(st.one_of(st.fixed_dictionaries({"type": st.sampled_from(["auto", "any", "none"])}),
                                       st.fixed_dictionaries({"type": st.just("tool"),
                                                              "name": maybe(st.just("Bash"))}))),
        "stop_sequences": maybe(st.lists(st.text(max_size=3), max_size=5)),
        "temperature": maybe(st.floats(0, 1)),
        "metadata": maybe(st.fixed_dictionaries({"user_id": maybe(st.text(max_size=80))})),
        "thinking": maybe(st.fixed_dictionaries({"type": st.sampled_from(["enabled", "adaptive", "disabled"]),
                                                 "budget_tokens": maybe(st.integers(0, 40000))})),
        "output_config": maybe(st.fixed_dictionaries({"effort": maybe(st.sampled_from(["low", "max"])),
                                                      "format": maybe(JSON)})),
        "stream": maybe(st.booleans()),
    },
)
DIALECTS = st.builds(Dialect, reasoning=st.sampled_from([None, "reasoning_effort", "openrouter", "deepseek",
                                                         "chat_template_kwargs"]),
                     replay_reasoning_details=st.booleans(), pdf_file_parts=st.booleans(),
                     max_stop_sequences=st.sampled_from([None, 4]),
                     response_format=st.sampled_from([None, "json_schema", "json_object"]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REQUEST, DIALECTS)
def test_requests_either_translate_or_are_refused_with_a_400(body: dict[str, Any], dialect: Dialect) -> None:
    refusal: InvalidRequest | None = None
    try:
        validate_request(body)
    except InvalidRequest as exc:
        refusal = exc
    if refusal is not None:
        assert refusal.status == 400 and ":" in refusal.message
        return
    request = prompt.compact(prompt.strip_billing_header(body), 50, len)
    chat = to_chat_request(request, model="backend", dialect=dialect)
    assert count_chat_tokens(chat) > 0
    StreamTranslator(model="m", tool_names=tool_name_map(body.get("tools")))
