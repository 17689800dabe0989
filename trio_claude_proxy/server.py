"""Run the app under Hypercorn's trio worker, with graceful shutdown on SIGTERM/SIGINT.

``hypercorn.trio.serve`` installs no signal handlers (only its CLI does), so
without a shutdown trigger SIGTERM would kill in-flight streams outright. The
first SIGTERM or SIGINT closes the listeners and gives running requests
``graceful_timeout`` seconds; a second SIGINT interrupts at once.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from functools import partial

import httpx
import hypercorn.trio
import trio
from hypercorn.config import Config

from ._version import __version__
from .app import create_app
from .backends import redact_url
from .settings import Settings
from .streaming import ShutdownNotice

log = logging.getLogger(__name__)


async def wait_for_signal() -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            return


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    host = settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    config.bind = [f"{host}:{settings.port}"]
    config.keep_alive_timeout = settings.keep_alive_timeout
    config.graceful_timeout = settings.graceful_timeout
    config.include_server_header = False
    config.accesslog = None  # the app logs one line per request itself
    # A logger, not "-": Hypercorn would add its own stderr handler and every
    # line of its would appear twice next to ours.
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


async def serve(
    settings: Settings,
    *,
    http_client: httpx.AsyncClient | None = None,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``shutdown_trigger`` returns (by default: SIGTERM or SIGINT).

    Reports the bound URLs through ``task_status`` once listening, so tests can
    ``await nursery.start(serve, settings)`` with port 0.
    """
    notice = ShutdownNotice()
    app = create_app(settings, http_client=http_client, shutdown=notice)
    wait = shutdown_trigger or wait_for_signal

    async def trigger() -> None:
        await wait()
        # Hypercorn gives in-flight requests graceful_timeout from now.
        notice.begin(settings.graceful_timeout)

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(hypercorn.trio.serve, app, hypercorn_config(settings), shutdown_trigger=trigger)
        )
        backends = "; ".join(
            f"{b.name}: {redact_url(b.url)} ({b.preset}, {'configured key' if b.key else 'client keys forwarded'})"
            for b in settings.all_backends
        )
        log.info("trio-claude-proxy %s listening on %s, backends %s", __version__, ", ".join(binds), backends)
        task_status.started(binds)
