"""Wire shapes, as TypedDicts over the plain dicts the converters pass around.

Anthropic shapes follow ``anthropic-sdk-python`` (``types/message_create_params.py``,
``types/raw_message_stream_event.py``); OpenAI shapes follow ``openai-python``
(``types/chat/``). They document and type-check; nothing validates against them
at run time (see :mod:`.validate` for what we check of a request).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

# ---- Anthropic -----------------------------------------------------------------


class MessageParam(TypedDict):
    role: Literal["user", "assistant", "system"]
    content: str | list[dict[str, Any]]


class MessagesRequest(TypedDict):
    model: str
    max_tokens: int
    messages: list[MessageParam]
    system: NotRequired[str | list[dict[str, Any]]]
    stream: NotRequired[bool]
    stop_sequences: NotRequired[list[str]]
    temperature: NotRequired[float]
    top_p: NotRequired[float]
    top_k: NotRequired[int]
    tools: NotRequired[list[dict[str, Any]]]
    tool_choice: NotRequired[dict[str, Any]]
    metadata: NotRequired[dict[str, Any]]
    thinking: NotRequired[dict[str, Any]]


class Usage(TypedDict):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: NotRequired[int]
    cache_read_input_tokens: NotRequired[int]


StopReason = Literal[
    "end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"
]


class Message(TypedDict):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    content: list[dict[str, Any]]
    model: str
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: Usage


# Stream events are plain dicts whose "type" is message_start,
# content_block_start, content_block_delta, content_block_stop, message_delta,
# message_stop, ping or error.
StreamEvent = dict[str, Any]

# ---- OpenAI ----------------------------------------------------------------------


class FunctionCall(TypedDict):
    name: str
    arguments: str


class ToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: FunctionCall


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant", "tool"]
    content: NotRequired[str | list[dict[str, Any]] | None]
    tool_calls: NotRequired[list[ToolCall]]
    tool_call_id: NotRequired[str]
    reasoning_content: NotRequired[str]


class ChatCompletionRequest(TypedDict):
    model: str
    messages: list[ChatMessage]
    max_tokens: NotRequired[int]
    max_completion_tokens: NotRequired[int]
    stream: NotRequired[bool]
    stream_options: NotRequired[dict[str, Any]]
    stop: NotRequired[list[str]]
    temperature: NotRequired[float]
    top_p: NotRequired[float]
    tools: NotRequired[list[dict[str, Any]]]
    tool_choice: NotRequired[str | dict[str, Any]]
    parallel_tool_calls: NotRequired[bool]
    user: NotRequired[str]


class ChunkDelta(TypedDict, total=False):
    role: str
    content: str | None
    reasoning_content: str | None
    reasoning: str | None
    tool_calls: list[dict[str, Any]] | None


class ChunkChoice(TypedDict, total=False):
    index: int
    delta: ChunkDelta
    finish_reason: str | None


class ChatCompletionChunk(TypedDict, total=False):
    id: str
    choices: list[ChunkChoice]
    usage: dict[str, Any] | None
