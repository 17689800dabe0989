"""Fixtures: the real app served by Hypercorn on loopback, against a scripted backend.

Testing charter (after trio-websocket's): loopback only, port 0; every test
that waits has a deadline; timing is asserted in trio's virtual time, never
in wall-clock time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from functools import partial
from typing import Any

import anthropic
import pytest
import trio

from trio_claude_proxy import Settings, serve

from .fakes import Reply, ScriptedBackend, client_for

SETTINGS = Settings(host="127.0.0.1", port=0, backend_url="http://backend.invalid/v1")


@pytest.fixture
def settings() -> Settings:
    return SETTINGS


class Proxy:
    """A running proxy and the scripted backend behind it."""

    def __init__(self, url: str, backend: ScriptedBackend) -> None:
        self.url = url
        self.backend = backend

    def sdk(self, **kwargs: Any) -> anthropic.AsyncAnthropic:
        kwargs.setdefault("api_key", "test-key")
        kwargs.setdefault("max_retries", 0)
        return anthropic.AsyncAnthropic(base_url=self.url, **kwargs)


StartProxy = Callable[..., Any]


@pytest.fixture
async def start_proxy(nursery: trio.Nursery) -> AsyncIterator[StartProxy]:
    """``await start_proxy(replies or responder=..., **settings)`` -> :class:`Proxy`."""
    stops: list[trio.Event] = []

    async def start(replies: list[Reply] | None = None, *, responder: Any = None,
                    models: list[dict[str, Any]] | None = None,
                    scripted: dict[str, ScriptedBackend] | None = None, **overrides: Any) -> Proxy:
        """With ``scripted``, each scripted backend answers the host of its name
        (declare them in ``backends=`` with URLs ``http://NAME/v1``)."""
        backend = ScriptedBackend(replies or [], responder=responder, models=models)
        stop = trio.Event()
        stops.append(stop)
        client = client_for(scripted) if scripted else backend.client()
        binds = await nursery.start(
            partial(serve, replace(SETTINGS, **overrides), http_client=client, shutdown_trigger=stop.wait)
        )
        return Proxy(binds[0], backend)

    yield start
    for stop in stops:
        stop.set()
