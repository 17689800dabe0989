"""Which key the backend gets.

With a configured backend key, that key is used. Otherwise the client's own
key (``x-api-key``, or ``Authorization: Bearer``, which Claude Code sends when
``ANTHROPIC_AUTH_TOKEN`` is set) is forwarded as a bearer token, so a team
behind one proxy keeps its individual backend keys.

A key starting ``sk-ant-`` is an Anthropic credential; forwarding it would
hand it to a third party, so it is refused.

Separately, a list of client keys (``client_keys``) can gate who may use the
proxy at all, typically beside a fixed backend key.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence

from .backends import printable_ascii
from .errors import AuthenticationFailed


def client_key(headers: Mapping[str, str]) -> str | None:
    """The client's key, from ``x-api-key`` or ``Authorization: Bearer``.

    Raises:
        AuthenticationFailed: the key is not printable ASCII (no API key is,
            and HTTP could not forward it).
    """
    key = headers.get("x-api-key")
    if not key:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        key = token if scheme.lower() == "bearer" else None
    key = key.strip() if key else None
    if key and not printable_ascii(key):
        raise AuthenticationFailed("Invalid API key: not printable ASCII")
    return key or None


def check_client(allowed: Sequence[str], headers: Mapping[str, str]) -> None:
    """With a list of client keys, the request must carry one of them.

    Every key is compared, in constant time, so timing tells nothing about
    which or how much of a key matched.

    Raises:
        AuthenticationFailed: no key, or one not on the list.
    """
    if not allowed:
        return
    key = (client_key(headers) or "").encode()
    matched = False
    for candidate in allowed:
        matched |= hmac.compare_digest(key, candidate.encode())
    if not matched:
        raise AuthenticationFailed("Invalid API key for this proxy")


def backend_key(configured: str | None, headers: Mapping[str, str]) -> str | None:
    """The key to send upstream.

    Raises:
        AuthenticationFailed: no key to forward, or an Anthropic key.
    """
    if configured:
        return configured
    key = client_key(headers)
    if key is None:
        raise AuthenticationFailed(
            "No API key: send x-api-key or Authorization: Bearer (it is forwarded to the backend),"
            " or start the proxy with --backend-key"
        )
    if key.startswith("sk-ant-"):
        raise AuthenticationFailed(
            "Refusing to forward an Anthropic API key (sk-ant-...) to a third-party backend:"
            " use the backend's key, or start the proxy with --backend-key"
        )
    return key
