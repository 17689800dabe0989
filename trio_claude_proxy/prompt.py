"""Prompt handling for backends that are not Claude (pure).

* Claude Code starts its system prompt with an attribution line,
  ``x-anthropic-billing-header: cc_version=...; cch=...;``, that changes with
  every request. A backend's prefix cache then misses from the first token on
  (SGLang measured ~4.8k vs ~20.8k cached tokens per request without it,
  sglang PR #21064), so we strip it by default.
* Small models drown in Claude Code's ~4k-token system prompt. ``compact``
  trims the *system* text (never tools, never user text) to a token budget by
  rules: blank-line runs collapse, ``<example>`` blocks go, then whole sections
  from the end, the opening (identity) section last. ``summarize`` asks the
  backend once per distinct prompt (see :mod:`.proxy`) and falls back to this.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .convert.request import system_text

BILLING_PREFIX = "x-anthropic-billing-header:"

_BLANK_RUNS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_EXAMPLES = re.compile(r"<example>.*?</example>\s*", re.S)
_SECTION = re.compile(r"(?m)^(?=#{1,3} )")


def strip_billing_header(request: dict[str, Any]) -> dict[str, Any]:
    """The request without Claude Code's per-request attribution line."""
    system = request.get("system")
    if isinstance(system, str):
        if not system.startswith(BILLING_PREFIX):
            return request
        return {**request, "system": system.split("\n", 1)[1] if "\n" in system else ""}
    if isinstance(system, list) and any(_is_billing(b) for b in system):
        return {**request, "system": [b for b in system if not _is_billing(b)]}
    return request


def _is_billing(block: Any) -> bool:
    return isinstance(block, dict) and str(block.get("text", "")).startswith(BILLING_PREFIX)


def combined_system(request: dict[str, Any]) -> str:
    """All system text: the ``system`` field and every ``role: "system"`` message."""
    texts = [system_text(request.get("system"))]
    texts += [system_text(m.get("content")) for m in request["messages"] if m["role"] == "system"]
    return "\n\n".join(t for t in texts if t)


def with_system(request: dict[str, Any], system: str) -> dict[str, Any]:
    """The request with ``system`` as its whole system prompt (system messages folded in)."""
    messages = [m for m in request["messages"] if m["role"] != "system"]
    return {**request, "system": system, "messages": messages}


def compact_text(text: str, budget: int, count: Callable[[str], int]) -> str:
    """Trim ``text`` to about ``budget`` tokens by the rules in the module docstring."""
    text = _TRAILING_SPACE.sub("\n", text)
    text = _BLANK_RUNS.sub("\n\n", text).strip()
    if count(text) <= budget:
        return text
    text = _EXAMPLES.sub("", text)
    if count(text) <= budget:
        return text
    sections = [s for s in _SECTION.split(text) if s.strip()]
    while len(sections) > 1 and count("".join(sections)) > budget:
        sections.pop()
    text = "".join(sections).strip()
    if count(text) <= budget:
        return text
    # One section is still too long: keep its head, cut at a paragraph.
    keep = len(text) * budget // max(1, count(text))
    cut = text.rfind("\n\n", 0, keep)
    return text[: cut if cut > 0 else keep].rstrip() + "\n\n[... instructions shortened]"


def compact(request: dict[str, Any], budget: int, count: Callable[[str], int]) -> dict[str, Any]:
    system = combined_system(request)
    if not system or count(system) <= budget:
        return request
    return with_system(request, compact_text(system, budget, count))


SUMMARY_INSTRUCTIONS = (
    "Rewrite the following instructions for an AI coding assistant so they fit in about {budget} "
    "tokens. Keep every rule about tools, safety, file editing and output format; drop examples, "
    "repetition and explanations. Answer with the rewritten instructions only."
)


def summary_request(system: str, budget: int) -> list[dict[str, str]]:
    """The chat messages that ask a backend to shorten ``system``."""
    return [
        {"role": "system", "content": SUMMARY_INSTRUCTIONS.format(budget=budget)},
        {"role": "user", "content": system},
    ]


_THINK = re.compile(r"^\s*<think>.*?(</think>|$)", re.S)


def clean_summary(text: Any) -> str | None:
    """A summary fit to become a system prompt: reasoning stripped, not empty."""
    if not isinstance(text, str):
        return None
    text = _THINK.sub("", text).strip()
    return text or None
