"""``trio-claude-proxy`` / ``python -m trio_claude_proxy``: parse flags, run the server."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Sequence
from functools import partial
from typing import Any

import trio

from ._version import __version__
from .server import serve, wait_for_signal
from .settings import SettingsError, load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-claude-proxy",
        description="Serve the Anthropic Messages API from an OpenAI-compatible backend.",
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8082)")
    parser.add_argument(
        "--backend-url",
        help="the backend's OpenAI base URL, e.g. http://127.0.0.1:8000/v1"
        " (a full .../chat/completions URL is accepted too)",
    )
    parser.add_argument(
        "--backend-key", help="key for the backend (default: forward each client's key)"
    )
    parser.add_argument("--config", help="a TOML settings file")
    parser.add_argument("--log-level", help="DEBUG, INFO (default), WARNING or ERROR")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # httpx logs every request at INFO, and its DEBUG output is request internals.
    for noisy in ("httpx", "httpcore", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    flags = {
        "host": args.host,
        "port": args.port,
        "backend_url": args.backend_url,
        "backend_key": args.backend_key,
        "log_level": args.log_level,
    }
    try:
        settings = load_settings(flags, config_path=args.config)
    except SettingsError as exc:
        print(f"trio-claude-proxy: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    async def shutdown_trigger() -> None:
        await wait_for_signal()
        # A client that stopped reading can hold a connection past any
        # cancellation (Hypercorn shields socket writes); do not let it hold
        # the process too.
        watchdog = threading.Timer(settings.graceful_timeout + HARD_EXIT_AFTER, _hard_exit)
        watchdog.daemon = True
        watchdog.start()

    try:
        trio.run(partial(serve, settings, shutdown_trigger=shutdown_trigger))
    except (KeyboardInterrupt, OSError, BaseExceptionGroup) as exc:
        # Hypercorn's nurseries wrap a failed bind (port taken), and a second
        # Ctrl-C, in exception groups.
        if _first(exc, KeyboardInterrupt) is not None:
            return 130
        cause = _first(exc, OSError)
        if cause is None:
            raise
        logging.getLogger("trio_claude_proxy").error("cannot serve: %s", cause)
        return 1
    return 0


#: Seconds past graceful_timeout after which a shutdown stops waiting for connections.
HARD_EXIT_AFTER = 5.0


def _hard_exit() -> None:
    logging.getLogger("trio_claude_proxy").error(
        "connections did not close within the graceful timeout; exiting anyway"
    )
    logging.shutdown()
    os._exit(1)


def _first(exc: BaseException, kind: type[BaseException]) -> Any:
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first(inner, kind)
            if found is not None:
                return found
    return None
