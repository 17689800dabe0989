"""Check a Messages request's shape before translating it.

Anthropic answers a malformed request with 400 ``invalid_request_error`` whose
message names the field (``messages.0.content: Input should be a valid list``);
we do the same, so a client's bug is reported as the client's, never as a
traceback or a backend's confusing complaint. Only what the translator relies on
is checked; unknown fields and block types are accepted (and dropped later),
because Claude Code adds new ones every few releases.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest

_ROLES = ("user", "assistant", "system")
_TOOL_CHOICES = ("auto", "any", "tool", "none")


def _fail(path: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"{path}: {problem}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_request(body: Any, *, count_tokens: bool = False) -> dict[str, Any]:
    """Return ``body`` if it is a well-formed Messages (or count_tokens) request.

    Raises:
        InvalidRequest: naming the first offending field.
    """
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    model = body.get("model")
    if model is None:
        raise _fail("model", "Field required")
    if not isinstance(model, str) or not model:
        raise _fail("model", "Input should be a non-empty string")
    if not count_tokens:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise _fail("max_tokens", "Field required")
        if not _is_int(max_tokens) or max_tokens < 0:
            raise _fail("max_tokens", "Input should be a non-negative integer")
    messages = body.get("messages")
    if messages is None:
        raise _fail("messages", "Field required")
    if not isinstance(messages, list):
        raise _fail("messages", "Input should be a valid list")
    if not messages:
        raise _fail("messages", "List should have at least 1 item")
    for i, message in enumerate(messages):
        _check_message(message, f"messages.{i}")
    _check_system(body.get("system"))
    for name, check, what in (
        ("stream", lambda v: isinstance(v, bool), "a valid boolean"),
        ("temperature", _is_number, "a valid number"),
        ("top_p", _is_number, "a valid number"),
        ("top_k", _is_int, "a valid integer"),
        ("metadata", lambda v: isinstance(v, dict), "a valid dictionary"),
        ("thinking", lambda v: isinstance(v, dict), "a valid dictionary"),
    ):
        value = body.get(name)
        if value is not None and not check(value):
            raise _fail(name, f"Input should be {what}")
    stops = body.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)
    ):
        raise _fail("stop_sequences", "Input should be a valid list of strings")
    _check_tools(body.get("tools"))
    _check_tool_choice(body.get("tool_choice"))
    return body


def _check_message(message: Any, path: str) -> None:
    if not isinstance(message, dict):
        raise _fail(path, "Input should be a valid dictionary")
    role = message.get("role")
    if role is None:
        raise _fail(f"{path}.role", "Field required")
    if role not in _ROLES:
        raise _fail(f"{path}.role", "Input should be 'user', 'assistant' or 'system'")
    content = message.get("content")
    if content is None:
        if role == "system":  # Claude Code's --bare sends empty system messages
            return
        raise _fail(f"{path}.content", "Field required")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _fail(f"{path}.content", "Input should be a valid string or list")
    for j, block in enumerate(content):
        _check_block(block, f"{path}.content.{j}")


# Blocks that may appear inside a tool_result's content or a document's content source.
_NESTED_KINDS = ("text", "image", "document", "search_result", "tool_reference")


def _check_block(block: Any, path: str) -> None:
    if not isinstance(block, dict):
        raise _fail(path, "Input should be a valid dictionary")
    kind = block.get("type")
    if not isinstance(kind, str):
        raise _fail(f"{path}.type", "Field required")
    if kind == "text":
        _require(block, "text", str, path)
    elif kind == "image":
        _check_source(block, path, ("base64", "url", "file"))
    elif kind == "document":
        source = _check_source(block, path, ("base64", "text", "url", "content", "file"))
        if source.get("type") == "content":
            content = source.get("content")
            if not isinstance(content, str):
                _check_list(content, f"{path}.source.content", ("text", "image"))
    elif kind == "search_result":
        _check_list(block.get("content"), f"{path}.content", ("text",))
        for key in ("title", "source"):
            if not isinstance(block.get(key, ""), str):
                raise _fail(f"{path}.{key}", "Input should be a valid string")
    elif kind == "tool_use":
        _require(block, "id", str, path)
        _require(block, "name", str, path)
        if not isinstance(block.get("input", {}), dict):
            raise _fail(f"{path}.input", "Input should be a valid dictionary")
    elif kind == "tool_result":
        _require(block, "tool_use_id", str, path)
        content = block.get("content")
        if content is not None and not isinstance(content, str):
            _check_list(content, f"{path}.content", _NESTED_KINDS)
    elif kind == "thinking":
        _require(block, "thinking", str, path)


def _check_list(content: Any, path: str, kinds: tuple[str, ...]) -> None:
    if not isinstance(content, list):
        raise _fail(path, "Input should be a valid list")
    for i, inner in enumerate(content):
        _check_block(inner, f"{path}.{i}")
        if inner["type"] not in kinds:
            raise _fail(f"{path}.{i}.type", f"Input should be one of {', '.join(kinds)}")


_SOURCE_FIELD = {"base64": "data", "text": "data", "url": "url", "file": "file_id"}


def _check_source(block: dict[str, Any], path: str, kinds: tuple[str, ...]) -> dict[str, Any]:
    _require(block, "source", dict, path)
    source = block["source"]
    kind = source.get("type")
    if kind not in kinds:
        raise _fail(f"{path}.source.type", f"Input should be one of {', '.join(kinds)}")
    if kind in _SOURCE_FIELD:
        _require(source, _SOURCE_FIELD[kind], str, f"{path}.source")
    return source


def _require(block: dict[str, Any], key: str, kind: type, path: str) -> None:
    value = block.get(key)
    if value is None:
        raise _fail(f"{path}.{key}", "Field required")
    if not isinstance(value, kind):
        name = {str: "a valid string", dict: "a valid dictionary"}[kind]
        raise _fail(f"{path}.{key}", f"Input should be {name}")


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _fail("system", "Input should be a valid string or list")
    for i, block in enumerate(system):
        if not isinstance(block, dict):
            raise _fail(f"system.{i}", "Input should be a valid dictionary")
        if block.get("type", "text") == "text":
            _require(block, "text", str, f"system.{i}")


def _check_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _fail("tools", "Input should be a valid list")
    for i, tool in enumerate(tools):
        path = f"tools.{i}"
        if not isinstance(tool, dict):
            raise _fail(path, "Input should be a valid dictionary")
        _require(tool, "name", str, path)
        if tool.get("type") in (None, "custom"):
            _require(tool, "input_schema", dict, path)


def _check_tool_choice(choice: Any) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict):
        raise _fail("tool_choice", "Input should be a valid dictionary")
    kind = choice.get("type")
    if kind not in _TOOL_CHOICES:
        raise _fail("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'")
    if kind == "tool":
        _require(choice, "name", str, "tool_choice")
