"""Track streamed tool-call arguments (pure): where JSON escapes end, when the value closes.

The Python SDK re-parses the accumulated ``input_json_delta`` buffer on every
delta (``jiter.from_json(buf, partial_mode=True)`` in
``lib/streaming/_messages.py``). A delta that ends inside an escape sequence
(``\\`` or ``\\u00``) leaves a buffer some parsers reject, so the scanner holds
such a tail back until the escape is whole. It also knows when the top-level
value has closed, which tells the translator a call is complete, and it can
close an unfinished value (a call cut off by ``max_tokens``) into valid JSON.

Only the characters that matter are visited (a regex jumps between them), so a
50 KB file written through a tool call costs a few hundred steps, not 50,000.
"""

from __future__ import annotations

import json
import re
from typing import Any

_SPECIAL = re.compile(r'["\\{}\[\]]')
_CLOSER = {"{": "}", "[": "]"}


class ArgumentScanner:
    __slots__ = ("in_string", "stack", "started", "tail", "valid_start")

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.in_string = False
        self.started = False  # a non-blank character has been seen
        self.valid_start = True  # ... and it opened an object or array
        self.tail = ""  # held back: an escape sequence still arriving

    @property
    def complete(self) -> bool:
        return self.started and not self.stack and not self.in_string and not self.tail

    def feed(self, text: str) -> str:
        """Consume ``text``; return the part that is safe to emit now.

        Leading blanks are dropped (a lone ``" "`` is not a JSON prefix jiter
        accepts), and so is anything after the object closes (a second object,
        or junk, would make the accumulated arguments invalid).
        """
        if self.complete:
            return ""
        text = self.tail + text
        self.tail = ""
        if not self.started:
            text = text.lstrip()
            if not text:
                return ""
            self.started = True
            self.valid_start = text[0] == "{"
        n = len(text)
        pos = 0
        while (match := _SPECIAL.search(text, pos)) is not None:
            char, at = match.group(), match.start()
            pos = at + 1
            if self.in_string:
                if char == '"':
                    self.in_string = False
                elif char == "\\":
                    need = 6 if text[at + 1 : at + 2] == "u" else 2
                    if at + need > n:
                        self.tail = text[at:]
                        return text[:at]
                    pos = at + need
            elif char == '"':
                self.in_string = True
            elif char in "{[":
                self.stack.append(char)
            elif self.stack:  # } or ]
                self.stack.pop()
                if not self.stack:
                    return text[: at + 1]
        return text


def parse_arguments(text: str) -> dict[str, Any] | None:
    """The arguments as an object; None if hopeless.

    Repairs a value cut off mid-way, ignores junk after a complete object
    (as the SDKs' parsers do), and unwraps a double-encoded object
    (``"{\\"a\\": 1}"``), which some models produce.
    """
    text = text.strip()
    if not text:
        return {}
    try:
        value, _ = _DECODER.raw_decode(text)
    except ValueError:
        value = _repair(text)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


_DECODER = json.JSONDecoder()


def _close(text: str) -> str:
    scanner = ArgumentScanner()
    body = scanner.feed(text)  # drops a dangling escape
    return body + ('"' if scanner.in_string else "") + "".join(
        _CLOSER[c] for c in reversed(scanner.stack)
    )


def _repair(text: str) -> Any:
    """Close a truncated value the way the SDKs' partial parsers read it.

    jiter (Python SDK) drops a string member that was cut off, so a ``Write``
    whose content was truncated by ``max_tokens`` is missing that field rather
    than carrying half a file; we do the same by cutting back to the last
    complete member first.
    """
    scanner = ArgumentScanner()
    scanner.feed(text)
    if not scanner.valid_start:
        return None
    candidates = [_close(text)]
    cut = text.rfind(",")
    if cut > 0:
        candidates.insert(0 if scanner.in_string else 1, _close(text[:cut]))
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None
