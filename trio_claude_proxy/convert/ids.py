"""Identifiers: message ids, tool-use ids, thinking signatures.

Anthropic tool-use ids match ``^[a-zA-Z0-9_-]+$``; backends mint others
(Kimi's ``functions.Bash:0``, ids with dots or colons). An id we cannot pass
through is wrapped reversibly: ``toolu_enc_`` + base64url of the original, which
uses only allowed characters. When the call comes back in the next request's
history we unwrap it, so the backend sees its own id again. Being stateless, the
mapping survives restarts and works across instances behind a load balancer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import string
from typing import Any

_ALNUM = string.ascii_letters + string.digits
_VALID_TOOL_ID = re.compile(r"[a-zA-Z0-9_-]{1,200}")
_ENCODED_PREFIX = "toolu_enc_"

#: Prefix of the signatures we put on thinking blocks. Claude Code keeps a
#: thinking block only if it is signed (protocol.md A.6 #11). The signature
#: also carries what the backend needs to continue its reasoning on the next
#: turn: OpenRouter's ``reasoning_details`` (encrypted reasoning, provider
#: signatures), which must be replayed unchanged (raine/claude-code-proxy #75).
SIGNATURE_PREFIX = "tcp1_"
_DETAILS_PREFIX = SIGNATURE_PREFIX + "d_"


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def new_message_id() -> str:
    return "msg_" + _random(24)


def new_tool_use_id() -> str:
    return "toolu_" + _random(24)


def new_signature(details: list[dict[str, Any]] | None = None) -> str:
    """A signature of ours; with ``details``, one that carries them back to us."""
    if details:
        payload = json.dumps(details, separators=(",", ":"), ensure_ascii=False).encode()
        return _DETAILS_PREFIX + base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return SIGNATURE_PREFIX + _random(32)


def signature_details(signature: object) -> list[dict[str, Any]] | None:
    """The ``reasoning_details`` a signature of ours carries, if any."""
    if not isinstance(signature, str) or not signature.startswith(_DETAILS_PREFIX):
        return None
    payload = signature[len(_DETAILS_PREFIX) :]
    try:
        value = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    return None


_VALID_FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def to_backend_tool_name(name: str) -> str:
    """A function name OpenAI accepts (``^[a-zA-Z0-9_-]{1,64}$``) for a tool name.

    MCP tools in Claude Code are named ``mcp__server__tool`` and easily pass 64
    characters; OpenAI and Azure reject those. Such a name becomes a cleaned
    prefix plus a hash, the same every time, and :func:`tool_name_map` maps it
    back when the model calls it.
    """
    if _VALID_FUNCTION_NAME.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:55] + "_" + digest


def tool_name_map(tools: Any) -> dict[str, str]:
    """Backend function name -> tool name, for the names that were rewritten."""
    out = {}
    for tool in tools or ():
        name = tool.get("name") if isinstance(tool, dict) else None
        if isinstance(name, str) and to_backend_tool_name(name) != name:
            out[to_backend_tool_name(name)] = name
    return out


def to_anthropic_tool_id(backend_id: str) -> str:
    """A valid Anthropic id for ``backend_id``, reversible by :func:`to_backend_tool_id`."""
    if _VALID_TOOL_ID.fullmatch(backend_id) and not backend_id.startswith(_ENCODED_PREFIX):
        return backend_id
    encoded = base64.urlsafe_b64encode(backend_id.encode()).decode().rstrip("=")
    return _ENCODED_PREFIX + encoded


def to_backend_tool_id(anthropic_id: str) -> str:
    """Undo :func:`to_anthropic_tool_id`; other ids pass through unchanged."""
    if not anthropic_id.startswith(_ENCODED_PREFIX):
        return anthropic_id
    payload = anthropic_id[len(_ENCODED_PREFIX) :]
    try:
        return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return anthropic_id
