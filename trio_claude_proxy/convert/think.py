"""Split ``<think>...</think>`` reasoning out of streamed content (pure).

Many models served without a reasoning parser (llama.cpp without
``--reasoning-format``, Groq ``raw``, most Qwen/DeepSeek-R1 derivatives) put
their reasoning inside the content, wrapped in ``<think>`` tags. The tag only
counts at the very start of the content (after whitespace): a model that
*talks about* the tag later in an answer is left alone. Tags split across
chunks are handled by holding back the longest suffix that could still become
a tag.
"""

from __future__ import annotations

OPEN, CLOSE = "<think>", "</think>"
#: Leading whitespace held while waiting to see whether a tag follows.
BLANK_LIMIT = 64 * 1024

Piece = tuple[str, str]  # ("thinking" | "text", text)


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ThinkTagParser:
    __slots__ = ("_buf", "_state")

    def __init__(self) -> None:
        self._state = "start"  # start -> thinking -> after -> text, or start -> text
        self._buf = ""

    def feed(self, text: str) -> list[Piece]:
        if self._state == "text":
            return [("text", text)] if text else []
        self._buf += text
        out: list[Piece] = []
        if self._state == "start":
            stripped = self._buf.lstrip()
            if (not stripped or OPEN.startswith(stripped)) and len(self._buf) <= BLANK_LIMIT:
                return out  # only whitespace, or a tag still arriving
            if not stripped.startswith(OPEN):
                self._state = "text"
                buf, self._buf = self._buf, ""
                return [("text", buf)]
            self._state = "thinking"
            self._buf = stripped[len(OPEN) :]
        if self._state == "thinking":
            end = self._buf.find(CLOSE)
            if end < 0:
                keep = _partial_suffix(self._buf, CLOSE)
                emit = self._buf[: len(self._buf) - keep]
                self._buf = self._buf[len(self._buf) - keep :]
                return [("thinking", emit)] if emit else out
            if end:
                out.append(("thinking", self._buf[:end]))
            self._buf = self._buf[end + len(CLOSE) :]
            self._state = "after"
        # "after": drop the blank lines models put between </think> and the answer
        rest = self._buf.lstrip()
        if rest:
            self._state = "text"
            out.append(("text", rest))
        self._buf = ""
        return out

    def flush(self) -> list[Piece]:
        """End of content: whatever is held back is released as it stands."""
        buf, self._buf = self._buf, ""
        if not buf:
            return []
        if self._state == "thinking":
            return [("thinking", buf)]
        if self._state == "start":
            return [("text", buf)]
        return []
