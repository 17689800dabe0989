"""OpenAI chat-completion chunks -> Anthropic stream events: a pure state machine.

Rule 1: everything that decides which Anthropic event comes next lives in this
file. Rule 2: this file does no I/O; the relay feeds it parsed chunks and
writes out what it returns.

The Anthropic stream (https://docs.anthropic.com/en/docs/build-with-claude/streaming)::

    message_start
    (content_block_start  content_block_delta*  content_block_stop)*   indices 0, 1, 2...
    message_delta                                                      stop_reason + usage
    message_stop

What the clients demand of it (protocol.md A.6), and how we keep it:

* Blocks never interleave and indices run 0, 1, 2 in start order: the SDKs
  append on ``content_block_start`` and ignore its index. At most one block is
  open; a delta for another block closes it first.
* OpenAI interleaves freely: reasoning, content and several tool calls (keyed by
  ``tool_calls[].index``) may alternate. While a tool call's arguments are still
  an unfinished JSON value, output for any other block is queued, and replayed
  in arrival order once that value closes (or at the end).
* Thinking blocks end with a ``signature_delta``: Claude Code drops unsigned
  thinking.
* ``message_delta`` waits for the end of the stream, because the usage chunk
  comes after ``finish_reason``. A stream that ends with no ``finish_reason`` was
  cut short and is an error, never a silent ``end_turn``.
* Empty deltas are never sent, and a block is not opened for whitespace alone.

States: STREAMING -> FINISHING (finish_reason seen) -> DONE; any error -> ERROR,
which is sticky.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ProxyError, UpstreamError, error_from_stream_chunk
from .dialect import DEFAULT_DIALECT, Dialect
from .ids import new_message_id, new_signature, new_tool_use_id, to_anthropic_tool_id
from .jsonscan import ArgumentScanner, parse_arguments
from .think import ThinkTagParser
from .types import ChatCompletionChunk, StreamEvent

_STOP_REASONS = {
    "stop": "end_turn",
    "end_turn": "end_turn",
    "eos": "end_turn",
    "repetition": "end_turn",
    "length": "max_tokens",
    "max_tokens": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_FAILED_FINISH = ("error", "abort")

# Rough characters per token, for output usage when a backend reports none.
_CHARS_PER_TOKEN = 4

# Bounds on what the translator holds back (characters). A stream is the
# backend's to shape; none of these may grow with it without limit.
QUEUE_LIMIT = 4 * 1024 * 1024  # output waiting on an unfinished tool call
HELD_LIMIT = 4 * 1024 * 1024  # arguments that did not start as a JSON object
PENDING_BLANK_LIMIT = 64 * 1024  # whitespace not yet worth a block


@dataclass(slots=True)
class _ToolCall:
    backend_id: str
    id: str
    name: str
    order: int
    index: int | None = None  # Anthropic block index, once started
    closed: bool = False
    scanner: ArgumentScanner = field(default_factory=ArgumentScanner)
    held: list[str] = field(default_factory=list)  # arguments not streamed (invalid start)
    unnamed: list[str] = field(default_factory=list)  # arguments before the name arrived


class StreamTranslator:
    """Feed OpenAI chunks; get Anthropic events.

    Args:
        model: the model name to report (the one the client asked for).
        input_tokens: the prompt estimate for ``message_start``.
        stop_sequences: the request's, to report which one matched.
        dialect: the backend's knobs.
        tool_names: backend function names that stand for other tool names.

    Usage: ``start()`` once, ``feed(chunk)`` per parsed chunk, ``finish()`` at
    ``[DONE]`` or end of stream. ``feed`` and ``finish`` raise
    :class:`~trio_claude_proxy.errors.ProxyError` when the backend reports an
    error or the stream is cut short; the caller turns it into ``event: error``.
    """

    def __init__(
        self,
        *,
        model: str,
        input_tokens: int = 0,
        stop_sequences: list[str] | tuple[str, ...] = (),
        dialect: Dialect = DEFAULT_DIALECT,
        tool_names: Mapping[str, str] | None = None,
    ) -> None:
        self.message_id = new_message_id()
        self.model = model
        self.state = "STREAMING"
        self._input_estimate = input_tokens
        self._tool_names = tool_names or {}
        self._stop_sequences = tuple(stop_sequences)
        self._think = ThinkTagParser() if dialect.parse_think_tags else None
        self._next_index = 0
        self._open_kind: str | None = None  # "text" | "thinking" | "tool"
        self._open_call: _ToolCall | None = None
        self._pending_ws = ""  # whitespace not yet worth opening a block for
        self._pending_kind: str | None = None
        self._calls: dict[Any, _ToolCall] = {}
        self._call_count = 0
        self._refused = False
        self._details: dict[Any, dict[str, Any]] = {}  # OpenRouter reasoning_details, merged
        self._last_key: Any = None
        self._queue: deque[tuple[str, Any]] = deque()
        self._queued = 0  # characters in the queue
        self._used_ids: set[str] = set()
        self._finish_reason: str | None = None
        self._matched_stop: str | None = None
        self._usage: dict[str, Any] | None = None
        self._output_chars = 0
        self._finishing = False

    # ---- public API ---------------------------------------------------------------

    @property
    def usage(self) -> dict[str, Any] | None:
        """The backend's own usage report (OpenAI shape), if it sent one."""
        return self._usage

    def start(self) -> list[StreamEvent]:
        return [
            {
                "type": "message_start",
                "message": {
                    "id": self.message_id,
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": self.model,
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": self._input_estimate,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                        "output_tokens": 1,
                    },
                },
            }
        ]

    def feed(self, chunk: ChatCompletionChunk | dict[str, Any]) -> list[StreamEvent]:
        if self.state == "ERROR" or self.state == "DONE":
            return []
        try:
            return self._feed(chunk)
        except ProxyError:
            self.state = "ERROR"
            raise

    def finish(self) -> list[StreamEvent]:
        """End of the backend's stream: close blocks and report why it stopped."""
        if self.state == "ERROR" or self.state == "DONE":
            return []
        if self._finish_reason is None:
            self.state = "ERROR"
            raise UpstreamError("Backend stream ended before the response was complete")
        out: list[StreamEvent] = []
        self._flush_think(out)
        for call in self._calls.values():
            if call.unnamed:  # never named: open the block anyway rather than lose it
                self._route("tool", (call, "".join(call.unnamed)), out)
                call.unnamed.clear()
        self._finishing = True
        self._drain(out)
        self._close(out)
        for call in sorted(self._calls.values(), key=lambda c: c.order):
            if call.index is None:  # a call whose block never opened: emit it whole
                self._start_call(call, out)
                self._close(out)
        if self._details:  # reasoning with no text (encrypted only): a signed, empty block
            self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
            self._close(out)
        self.state = "DONE"
        out.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": self._stop_reason(), "stop_sequence": self._matched_stop},
                "usage": self._final_usage(),
            }
        )
        out.append({"type": "message_stop"})
        return out

    # ---- chunks ------------------------------------------------------------------------

    def _feed(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        error = error_from_stream_chunk(chunk)
        if error is not None:
            raise error
        usage = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage")
        if usage:
            self._usage = usage
        out: list[StreamEvent] = []
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # n > 1 is never asked for
            if self.state != "STREAMING":
                continue  # content after finish_reason: nothing valid can follow
            delta = choice.get("delta") or {}
            details = delta.get("reasoning_details")
            if isinstance(details, list):
                self._collect_details(details)
            reasoning = _reasoning_text(delta)
            if reasoning:
                self._route("thinking", reasoning, out)
            refusal = _text(delta.get("refusal"))
            if refusal:  # OpenAI structured outputs: the model declined
                self._refused = True
                self._route("text", refusal, out)
            content = _text(delta.get("content"))
            if content:
                if self._think is not None:
                    for kind, text in self._think.feed(content):
                        self._route(kind, text, out)
                else:
                    self._route("text", content, out)
            for tool_call in delta.get("tool_calls") or ():
                self._tool_delta(tool_call, out)
            finish = choice.get("finish_reason")
            if finish:
                self._on_finish(finish, choice)
        return out

    def _on_finish(self, finish: str, choice: dict[str, Any]) -> None:
        if finish in _FAILED_FINISH:
            raise UpstreamError(f"Backend stopped generating (finish_reason {finish!r})")
        self._finish_reason = finish
        self.state = "FINISHING"
        # vLLM reports the matched stop string as choices[].stop_reason, SGLang as matched_stop.
        for key in ("stop_reason", "matched_stop"):
            matched = choice.get(key)
            if isinstance(matched, str) and matched in self._stop_sequences:
                self._matched_stop = matched

    def _tool_delta(self, tool_call: dict[str, Any], out: list[StreamEvent]) -> None:
        function = tool_call.get("function") or {}
        backend_id = tool_call.get("id") or None
        name = function.get("name") if isinstance(function.get("name"), str) else ""
        name = self._tool_names.get(name, name)  # undo to_backend_tool_name
        key = tool_call.get("index")
        if key is None:
            # No index (Gemini-style, some Ollama versions): key on the id, else
            # the call we heard from last.
            key = backend_id if backend_id is not None else self._last_key
        call = self._calls.get(key)
        if (
            call is not None
            and backend_id is not None
            and backend_id != call.backend_id
            and (call.scanner.complete or call.held)
        ):
            # Same index, a new id, after a complete value: a backend that
            # numbers every call 0. The old call keeps a private key; the index
            # now means the new one, for the id-less chunks that follow.
            self._calls[(key, call.order)] = call
            call = None
        if call is None:
            call = self._new_call(key, backend_id, name)
        elif not call.name and name:
            call.name = name
        self._last_key = key
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # a few servers send an object, not a string
            arguments = json.dumps(arguments, ensure_ascii=False)
        elif not isinstance(arguments, str):
            arguments = ""
        if not call.name:
            # A block cannot be opened without its name (Claude Code looks the
            # tool up by it); keep the arguments until the name arrives.
            call.unnamed.append(arguments)
            return
        if call.unnamed:
            arguments = "".join(call.unnamed) + arguments
            call.unnamed.clear()
        self._route("tool", (call, arguments), out)

    def _new_call(self, key: Any, backend_id: str | None, name: str) -> _ToolCall:
        if backend_id:
            anthropic_id = to_anthropic_tool_id(backend_id)
        else:
            anthropic_id = new_tool_use_id()
        if anthropic_id in self._used_ids:  # ids must be unique within a message
            anthropic_id = new_tool_use_id()
        self._used_ids.add(anthropic_id)
        call = _ToolCall(backend_id or anthropic_id, anthropic_id, name, self._call_count)
        self._call_count += 1
        self._calls[key] = call
        return call

    # ---- routing: one open block at a time -------------------------------------------

    def _route(self, kind: str, payload: Any, out: list[StreamEvent]) -> None:
        """Emit now, or queue behind a tool call whose arguments are unfinished.

        Once anything is queued, everything queues (and the queue drains at
        once if it can), so no piece overtakes an earlier one of its block.
        """
        if not self._queue and not self._blocked_by(kind, payload):
            self._emit(kind, payload, out)
            return
        self._queue.append((kind, payload))
        self._queued += len(payload if kind != "tool" else payload[1])
        if self._queued > QUEUE_LIMIT:
            # A call whose arguments never close cannot hold everything else
            # back without bound: give up waiting on it.
            self._drain(out, force=True)
        else:
            self._drain(out)

    def _blocked_by(self, kind: str, payload: Any) -> bool:
        call = self._open_call
        if call is None or self._finishing or call.scanner.complete:
            return False
        return not (kind == "tool" and payload[0] is call)

    def _drain(self, out: list[StreamEvent], *, force: bool = False) -> None:
        """Replay queued output now that it may go out.

        While the open tool call is unfinished, its own queued fragments are
        taken first, wherever they wait; everything else keeps arrival order.
        At the end (``_finishing``) an unfinished call is given up on and the
        queue drains in order.
        """
        queue = self._queue
        while queue:
            call = self._open_call
            if call is not None and not call.scanner.complete:
                mine = next(
                    (i for i, (kind, payload) in enumerate(queue) if kind == "tool" and payload[0] is call),
                    None,
                )
                if mine is not None:
                    kind, payload = queue[mine]
                    del queue[mine]
                    self._emit(kind, payload, out)
                    continue
                if not (self._finishing or force):
                    return
            kind, payload = queue.popleft()
            self._emit(kind, payload, out)
        self._queued = 0

    def _emit(self, kind: str, payload: Any, out: list[StreamEvent]) -> None:
        if kind == "tool":
            self._emit_arguments(payload[0], payload[1], out)
            return
        text: str = payload
        if self._open_kind == kind:
            self._delta(kind, text, out)
            return
        if not text.strip():
            # Not worth a block yet; kept in case real text follows.
            if self._pending_kind != kind:
                self._pending_ws = ""
            self._pending_kind = kind
            self._pending_ws += text
            if len(self._pending_ws) <= PENDING_BLANK_LIMIT:
                return
            text, self._pending_ws, self._pending_kind = self._pending_ws, "", None
            self._open(kind, {"type": "text", "text": ""} if kind == "text"
                       else {"type": "thinking", "thinking": "", "signature": ""}, out)
            self._delta(kind, text, out)
            return
        if self._pending_kind == kind:
            text = self._pending_ws + text
        self._pending_ws, self._pending_kind = "", None
        self._open(kind, {"type": "text", "text": ""} if kind == "text"
                   else {"type": "thinking", "thinking": "", "signature": ""}, out)
        self._delta(kind, text, out)

    def _emit_arguments(self, call: _ToolCall, arguments: str, out: list[StreamEvent]) -> None:
        if call.closed:
            return  # arguments after the value closed and we moved on: invalid anyway
        if call.index is None:
            self._start_call(call, out)
        if not arguments:
            return
        if call.held or (call.scanner.started and not call.scanner.valid_start):
            if sum(map(len, call.held)) < HELD_LIMIT:  # not JSON anyway; past this, dropped
                call.held.append(arguments)
            return
        safe = call.scanner.feed(arguments)
        if not call.scanner.valid_start:
            call.held.append(safe + call.scanner.tail)
            call.scanner.tail = ""
            return
        if safe:
            self._output_chars += len(safe)
            out.append(
                {
                    "type": "content_block_delta",
                    "index": call.index,
                    "delta": {"type": "input_json_delta", "partial_json": safe},
                }
            )

    def _start_call(self, call: _ToolCall, out: list[StreamEvent]) -> None:
        self._open(
            "tool",
            {"type": "tool_use", "id": call.id, "name": call.name, "input": {}},
            out,
        )
        call.index = self._next_index - 1
        self._open_call = call

    # ---- blocks ------------------------------------------------------------------------------

    def _open(self, kind: str, block: dict[str, Any], out: list[StreamEvent]) -> None:
        self._close(out)
        self._pending_ws, self._pending_kind = "", None
        out.append({"type": "content_block_start", "index": self._next_index, "content_block": block})
        self._open_kind = kind
        self._next_index += 1

    def _delta(self, kind: str, text: str, out: list[StreamEvent]) -> None:
        self._output_chars += len(text)
        delta = (
            {"type": "text_delta", "text": text}
            if kind == "text"
            else {"type": "thinking_delta", "thinking": text}
        )
        out.append({"type": "content_block_delta", "index": self._next_index - 1, "delta": delta})

    def _close(self, out: list[StreamEvent]) -> None:
        if self._open_kind is None:
            return
        index = self._next_index - 1
        if self._open_kind == "thinking":
            details = list(self._details.values())
            self._details.clear()
            out.append(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "signature_delta", "signature": new_signature(details)},
                }
            )
        elif self._open_kind == "tool" and self._open_call is not None:
            self._close_call(self._open_call, out)
        out.append({"type": "content_block_stop", "index": index})
        self._open_kind = None
        self._open_call = None

    def _close_call(self, call: _ToolCall, out: list[StreamEvent]) -> None:
        call.closed = True
        # A tail still held in the scanner is an escape cut off mid-way: dropped.
        held = "".join(call.held)
        if held:
            # Arguments that did not start as a JSON object: send them only if
            # they turn out to be one, else the client gets `{}`.
            value = parse_arguments(held)
            held = json.dumps(value, ensure_ascii=False) if value else ""
        if held:
            out.append(
                {
                    "type": "content_block_delta",
                    "index": call.index,
                    "delta": {"type": "input_json_delta", "partial_json": held},
                }
            )

    def _collect_details(self, details: list[Any]) -> None:
        """Merge streamed ``reasoning_details`` fragments by their ``index``:
        text pieces concatenate, other fields (signature, data) are set."""
        for item in details:
            if not isinstance(item, dict):
                continue
            key = item.get("index", len(self._details))
            merged = self._details.get(key)
            if merged is None:
                self._details[key] = dict(item)
                continue
            for name, value in item.items():
                if name in ("text", "summary") and isinstance(value, str):
                    merged[name] = (merged.get(name) or "") + value
                elif value is not None:
                    merged[name] = value

    def _flush_think(self, out: list[StreamEvent]) -> None:
        if self._think is not None:
            for kind, text in self._think.flush():
                self._route(kind, text, out)

    # ---- the end ----------------------------------------------------------------------------

    def _stop_reason(self) -> str:
        finish = self._finish_reason or "stop"
        if self._calls and finish in ("stop", "tool_calls", "function_call"):
            # Some backends say "stop" after tool calls (SGLang rewrites it too).
            return "tool_use"
        if finish in ("tool_calls", "function_call"):
            return "end_turn"  # claimed tool calls but sent none
        if self._matched_stop is not None:
            return "stop_sequence"
        if self._refused:
            return "refusal"
        return _STOP_REASONS.get(finish, "end_turn")

    def _final_usage(self) -> dict[str, int]:
        return usage_from_openai(
            self._usage,
            input_estimate=self._input_estimate,
            output_estimate=max(1, self._output_chars // _CHARS_PER_TOKEN),
        )


def _text(value: Any) -> str:
    """Content as text: a string, or a list of parts (Mistral-style), else nothing."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p["text"] for p in value if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _reasoning_text(delta: dict[str, Any]) -> str:
    """Reasoning from ``reasoning_content`` (DeepSeek, SGLang, llama.cpp), else
    ``reasoning`` (vLLM, Ollama, OpenRouter), else OpenRouter's typed
    ``reasoning_details`` (which repeat ``reasoning`` when both are sent)."""
    for key in ("reasoning_content", "reasoning"):
        text = _text(delta.get(key))
        if text:
            return text
    details = delta.get("reasoning_details")
    if not isinstance(details, list):
        return ""
    return "".join(
        d.get("text") or d.get("summary") or ""
        for d in details
        if isinstance(d, dict) and isinstance(d.get("text") or d.get("summary") or "", str)
    )


def usage_from_openai(
    usage: dict[str, Any] | None, *, input_estimate: int, output_estimate: int
) -> dict[str, int]:
    """OpenAI usage -> Anthropic usage.

    Anthropic's ``input_tokens`` excludes cached tokens (total input is
    ``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``,
    per ``types/message.py``); OpenAI's ``prompt_tokens`` includes them.
    DeepSeek reports its cache hits as ``prompt_cache_hit_tokens``; OpenRouter
    its cache writes as ``prompt_tokens_details.cache_write_tokens``.
    """
    if not usage:
        return {
            "input_tokens": input_estimate,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_estimate,
        }
    prompt = _int(usage.get("prompt_tokens"), input_estimate)
    details = usage.get("prompt_tokens_details") or {}
    cached = _int(details.get("cached_tokens"), 0) or _int(usage.get("prompt_cache_hit_tokens"), 0)
    written = _int(details.get("cache_write_tokens"), 0)  # OpenRouter
    return {
        "input_tokens": max(0, prompt - cached - written),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "output_tokens": _int(usage.get("completion_tokens"), output_estimate),
    }


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
