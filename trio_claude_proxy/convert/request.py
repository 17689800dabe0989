"""Anthropic Messages request -> OpenAI chat completions request (pure).

The rules, with the reason for each:

* ``system`` (string or blocks) and every ``role: "system"`` message inside
  ``messages`` (Claude Code >= 2.1.154 sends them) become one leading system
  message: vLLM's and llama.cpp's chat templates reject a system message that is
  not first.
* ``tool_result`` blocks become ``role: "tool"`` messages right after the
  assistant message that called them, in the order of its calls. Tool messages
  carry text only, so images inside a result follow in a user message.
* ``tool_use`` becomes ``tool_calls``; the assistant ``content`` is then ``""``
  rather than null (llama-cpp-python answers 500 to a null).
* Thinking in history goes back as ``reasoning_content`` (DeepSeek requires it
  on tool turns); ``redacted_thinking`` is opaque to other models and dropped.
* Anthropic-only keys (``cache_control``, ``defer_loading``, ``input_examples``,
  ``citations``...) and unknown fields are never forwarded.
* Server tools (``web_search``, ``web_fetch``, code execution...) have no schema
  an OpenAI backend could run; they are dropped, with a ``tool_choice`` naming one.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from .dialect import DEFAULT_DIALECT, Dialect
from .documents import pdf_text
from .ids import signature_details, to_backend_tool_id, to_backend_tool_name
from .types import ChatCompletionRequest, ChatMessage, MessagesRequest

Block = dict[str, Any]


def to_chat_request(
    request: MessagesRequest | dict[str, Any], *, model: str, dialect: Dialect = DEFAULT_DIALECT
) -> ChatCompletionRequest | dict[str, Any]:
    """Translate a validated Messages request for the backend model ``model``."""
    tools, dropped_tools = _tools(request.get("tools"))
    out: dict[str, Any] = {"model": model, "messages": _messages(request, dialect)}

    max_tokens = request.get("max_tokens")
    if max_tokens is not None:
        # Anthropic allows 0 (a cache pre-warm); OpenAI-compatible servers do not.
        out[dialect.max_tokens_field] = max(1, max_tokens)
    if request.get("stream"):
        out["stream"] = True
        if dialect.stream_usage:
            out["stream_options"] = {"include_usage": True}
    for key in ("temperature", "top_p"):
        if request.get(key) is not None:
            out[key] = request[key]
    if dialect.send_top_k and request.get("top_k") is not None:
        out["top_k"] = request["top_k"]
    stops = request.get("stop_sequences")
    if stops:
        out["stop"] = list(stops)[: dialect.max_stop_sequences]
    if tools:
        out["tools"] = tools
        out.update(_tool_choice(request.get("tool_choice"), dropped_tools))
    user = _user_id(request.get("metadata"))
    if user:
        out["user"] = user
    response_format = _response_format(request, dialect.response_format)
    if response_format:
        out["response_format"] = response_format
    out.update(_reasoning(request, dialect.reasoning))
    return out


# ---- messages ----------------------------------------------------------------------


def _messages(request: dict[str, Any], dialect: Dialect) -> list[ChatMessage]:
    system_texts = [system_text(request.get("system"))]
    out: list[ChatMessage] = []
    call_order: dict[str, int] = {}
    for message in request["messages"]:
        role = message["role"]
        content = message.get("content")
        if role == "system":
            system_texts.append(system_text(content))
        elif role == "assistant":
            converted = _assistant(content, dialect)
            if converted is not None:
                out.append(converted)
                call_order = {c["id"]: i for i, c in enumerate(converted.get("tool_calls", ()))}
        else:
            out.extend(_user(content, call_order, dialect))
            call_order = {}
    system = "\n\n".join(t for t in system_texts if t)
    merged = _merge_consecutive(out)
    return [{"role": "system", "content": system}, *merged] if system else merged


def system_text(system: Any) -> str:
    """The text of a ``system`` field or system message: a string, or text blocks."""
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    return "\n\n".join(
        b["text"] for b in system if b.get("type", "text") == "text" and b.get("text")
    )


def _assistant(content: Any, dialect: Dialect) -> ChatMessage | None:
    """One assistant turn; thinking-only turns are kept (content ``""``) so a
    following merge can carry their reasoning onto the tool call that needs it."""
    if isinstance(content, str):
        return {"role": "assistant", "content": content} if content else None
    texts: list[str] = []
    reasoning: list[str] = []
    details: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        kind = block["type"]
        if kind == "thinking" and dialect.replay_reasoning_details:
            details += signature_details(block.get("signature")) or []
        if kind == "text" and block["text"]:
            texts.append(block["text"])
        elif kind == "tool_use":
            calls.append(
                {
                    "id": to_backend_tool_id(block["id"]),
                    "type": "function",
                    "function": {
                        "name": to_backend_tool_name(block["name"]),
                        "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False),
                    },
                }
            )
        elif kind == "thinking" and block["thinking"]:
            reasoning.append(block["thinking"])
        # redacted_thinking, server_tool_use and its results: opaque to this backend.
    field = dialect.reasoning_history_field
    if not texts and not calls and not (reasoning and field) and not details:
        return None
    message: ChatMessage = {"role": "assistant", "content": "\n\n".join(texts)}
    if calls:
        message["tool_calls"] = calls  # type: ignore[typeddict-item]
    if reasoning and field:
        message[field] = "\n\n".join(reasoning)  # type: ignore[literal-required]
    if details:
        message["reasoning_details"] = details  # type: ignore[typeddict-unknown-key]
    return message


def _user(content: Any, call_order: dict[str, int], dialect: Dialect) -> list[ChatMessage]:
    """A user turn: tool messages first, answering the previous assistant's calls.

    OpenAI-compatible servers insist that every ``tool_calls`` id gets exactly
    one tool message right after the call. A result with no matching call (or
    a second one) becomes user text; a call with no result gets a stub.
    """
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    tool_messages: list[ChatMessage] = []
    result_parts: list[Block] = []  # images from tool results, for a user message
    parts: list[Block] = []
    for block in blocks:
        if block["type"] != "tool_result":
            parts.extend(_content_parts(block, dialect))
            continue
        tool_message, images = _tool_result(block, dialect)
        call_id = tool_message["tool_call_id"]
        if call_id in call_order and all(m["tool_call_id"] != call_id for m in tool_messages):
            tool_messages.append(tool_message)
        else:
            parts.append({"type": "text", "text": f"[Result of tool call {block['tool_use_id']}]\n"
                                                  f"{tool_message['content']}"})
        if images:
            result_parts.append(
                {"type": "text", "text": f"[Images returned by tool call {block['tool_use_id']}]"}
            )
            result_parts.extend(images)
    answered = {m["tool_call_id"] for m in tool_messages}
    tool_messages += [
        {"role": "tool", "tool_call_id": call_id, "content": "(no result)"}
        for call_id in call_order if call_id not in answered
    ]
    tool_messages.sort(key=lambda m: call_order[m["tool_call_id"]])
    out = tool_messages
    user_parts = result_parts + parts
    if user_parts or not tool_messages:
        out.append({"role": "user", "content": _collapse(user_parts)})
    return out


def _tool_result(block: Block, dialect: Dialect) -> tuple[ChatMessage, list[Block]]:
    content = block.get("content")
    texts: list[str] = []
    images: list[Block] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for inner in content:
            if inner.get("type") == "tool_reference":
                texts.append(f"Tool loaded: {inner.get('tool_name', '')}")
                continue
            for part in _content_parts(inner, dialect):
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    images.append(part)
    text = "\n\n".join(t for t in texts if t)
    if block.get("is_error"):
        text = f"Error: {text}" if text else "Error"
    message: ChatMessage = {
        "role": "tool",
        "tool_call_id": to_backend_tool_id(block["tool_use_id"]),
        "content": text,
    }
    return message, images


def _content_parts(block: Block, dialect: Dialect) -> list[Block]:
    """OpenAI content parts for one Anthropic block (text and images)."""
    kind = block.get("type")
    if kind == "text":
        return [{"type": "text", "text": block["text"]}] if block["text"] else []
    if kind == "image":
        url = _image_url(block.get("source") or {})
        return [{"type": "image_url", "image_url": {"url": url}}] if url else []
    if kind == "document":
        return _document_parts(block, dialect)
    if kind == "search_result":
        texts = [c.get("text", "") for c in block.get("content") or [] if c.get("type") == "text"]
        header = f"Search result: {block.get('title', '')} ({block.get('source', '')})"
        return [{"type": "text", "text": "\n".join([header, *texts])}]
    return []  # thinking in a user turn, server tool results, unknown blocks


def _image_url(source: Block) -> str | None:
    if source.get("type") == "base64" and source.get("data"):
        return f"data:{source.get('media_type', 'image/png')};base64,{source['data']}"
    if source.get("type") == "url" and source.get("url"):
        return str(source["url"])
    return None


def _document_parts(block: Block, dialect: Dialect) -> list[Block]:
    source = block.get("source") or {}
    title = block.get("title")
    header = f"Document: {title}" if title else "Document"
    kind = source.get("type")
    if kind == "text":
        return [{"type": "text", "text": f"{header}\n{source.get('data', '')}"}]
    if kind == "content":
        inner = source.get("content")
        if isinstance(inner, str):
            return [{"type": "text", "text": f"{header}\n{inner}"}]
        parts = [p for b in inner or [] if isinstance(b, dict) for p in _content_parts(b, dialect)]
        return [{"type": "text", "text": header}, *parts]
    if kind == "url":
        return [{"type": "text", "text": f"{header} at {source.get('url')} (not fetched)"}]
    media_type = source.get("media_type", "")
    data = source.get("data")
    if kind == "base64" and media_type == "application/pdf" and isinstance(data, str):
        if dialect.pdf_file_parts:
            filename = f"{title}.pdf" if title else "document.pdf"
            return [{"type": "file", "file": {"filename": filename,
                                               "file_data": f"data:application/pdf;base64,{data}"}}]
        extracted = pdf_text(data)
        if extracted is None:
            return [{"type": "text", "text": f"[{header}: a PDF that could not be read]"}]
        text, pages = extracted
        if not text:
            return [{"type": "text", "text": f"[{header}: a PDF of {pages} page(s) with no "
                     "extractable text, e.g. a scan]"}]
        return [{"type": "text", "text": f"{header} (PDF, {pages} pages)\n{text}"}]
    if kind == "base64" and media_type.startswith("text/") and isinstance(data, str):
        try:
            decoded = base64.b64decode(data).decode("utf-8", errors="replace")
        except ValueError:
            decoded = ""
        return [{"type": "text", "text": f"{header}\n{decoded}"}]
    return [{"type": "text", "text": f"[{header}: a {media_type or kind} document this backend "
             "cannot read was omitted]"}]


def _collapse(parts: list[Block]) -> str | list[Block]:
    """Text-only content as one string: every backend accepts that form."""
    if all(p["type"] == "text" for p in parts):
        return "\n\n".join(p["text"] for p in parts)
    return parts


def _merge_consecutive(messages: list[ChatMessage]) -> list[ChatMessage]:
    """Merge adjacent user (or assistant) messages: strict templates alternate roles.

    Then drop assistant turns left with nothing but reasoning: no backend
    accepts an empty assistant message.
    """
    out: list[ChatMessage] = []
    for message in messages:
        prev = out[-1] if out else None
        if prev is None or prev["role"] != message["role"] or message["role"] == "tool":
            out.append(message)
            continue
        merged: dict[str, Any] = {**prev, **message}
        merged["content"] = _join_content(prev.get("content"), message.get("content"))
        if prev.get("tool_calls") or message.get("tool_calls"):
            merged["tool_calls"] = [*prev.get("tool_calls", []), *message.get("tool_calls", [])]
        for field in ("reasoning_content", "reasoning"):
            parts = [m[field] for m in (prev, message) if m.get(field)]  # type: ignore[literal-required]
            if parts:
                merged[field] = "\n\n".join(parts)
        details = [d for m in (prev, message) for d in m.get("reasoning_details", [])]  # type: ignore[attr-defined]
        if details:
            merged["reasoning_details"] = details
        out[-1] = merged  # type: ignore[assignment]
    return [
        m for m in out
        if m["role"] != "assistant" or m.get("content") or m.get("tool_calls") or m.get("reasoning_details")
    ]


def _join_content(a: Any, b: Any) -> Any:
    if isinstance(a, str) and isinstance(b, str):
        return "\n\n".join(x for x in (a, b) if x)

    def as_parts(c: Any) -> list[Block]:
        if isinstance(c, str):
            return [{"type": "text", "text": c}] if c else []
        return list(c or [])

    return as_parts(a) + as_parts(b)


# ---- tools ------------------------------------------------------------------------------


def _tools(tools: Any) -> tuple[list[dict[str, Any]], set[str]]:
    out: list[dict[str, Any]] = []
    dropped: set[str] = set()
    for tool in tools or ():
        if tool.get("type") not in (None, "custom") or not isinstance(
            tool.get("input_schema"), dict
        ):
            dropped.add(tool["name"])
            continue
        function: dict[str, Any] = {"name": to_backend_tool_name(tool["name"]),
                                    "parameters": tool["input_schema"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out, dropped


def _tool_choice(choice: Any, dropped: set[str]) -> dict[str, Any]:
    if not choice:
        return {}
    kind = choice["type"]
    out: dict[str, Any] = {}
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and choice["name"] not in dropped:
        out["tool_choice"] = {"type": "function", "function": {"name": to_backend_tool_name(choice["name"])}}
    if choice.get("disable_parallel_tool_use") and kind != "none":
        out["parallel_tool_calls"] = False
    return out


# ---- small fields ---------------------------------------------------------------------


def _user_id(metadata: Any) -> str | None:
    """OpenAI caps ``user`` at 64 characters; Claude Code sends about 150."""
    if not isinstance(metadata, dict):
        return None
    user_id = metadata.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        return None
    return user_id if len(user_id) <= 64 else hashlib.sha256(user_id.encode()).hexdigest()


def _response_format(request: dict[str, Any], style: str | None) -> dict[str, Any] | None:
    """``output_config.format`` (or beta ``output_format``) json_schema -> response_format."""
    if style is None:
        return None
    config = request.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if not isinstance(fmt, dict):
        fmt = request.get("output_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        return None
    if style == "json_object":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


# ---- reasoning --------------------------------------------------------------------------

_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def requested_effort(request: dict[str, Any]) -> str | None:
    """The effort a request asks for: "off", "low", "medium", "high", or None (unsaid).

    ``thinking: {type: enabled, budget_tokens}`` maps by budget; ``adaptive``
    (what Claude Code sends) and a bare ``output_config.effort`` use the effort.
    """
    thinking = request.get("thinking")
    config = request.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    effort = _EFFORTS.get(effort) if isinstance(effort, str) else None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return "off"
    if kind == "enabled":
        budget = thinking.get("budget_tokens")  # type: ignore[union-attr]
        if isinstance(budget, int):
            return "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"
        return effort or "medium"
    if kind == "adaptive":
        return effort or "medium"
    return effort


def _reasoning(request: dict[str, Any], style: str | None) -> dict[str, Any]:
    effort = requested_effort(request)
    if style is None or effort is None:
        return {}
    if style == "reasoning_effort":
        return {} if effort == "off" else {"reasoning_effort": effort}
    if style == "openrouter":
        return {"reasoning": {"enabled": False}} if effort == "off" else {"reasoning": {"effort": effort}}
    if style == "deepseek":
        # DeepSeek rejects an effort alongside disabled thinking (claude-code#65863).
        if effort == "off":
            return {"thinking": {"type": "disabled"}}
        return {"thinking": {"type": "enabled"}, "reasoning_effort": "low" if effort == "low" else "high"}
    if style == "chat_template_kwargs":
        return {"chat_template_kwargs": {"enable_thinking": effort != "off"}}
    return {}
