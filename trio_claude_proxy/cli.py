"""``trio-claude-proxy`` / ``python -m trio_claude_proxy``: parse flags, run the server."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import trio

from ._version import __version__
from .server import serve
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
    if settings.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        print(f"trio-claude-proxy: log_level: {settings.log_level!r} is not a level", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        trio.run(serve, settings)
    except KeyboardInterrupt:
        return 130
    except (OSError, BaseExceptionGroup) as exc:
        # Hypercorn's nurseries wrap a failed bind (port taken) in groups.
        cause = _first_os_error(exc)
        if cause is None:
            raise
        logging.getLogger("trio_claude_proxy").error("cannot serve: %s", cause)
        return 1
    return 0


def _first_os_error(exc: BaseException) -> OSError | None:
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first_os_error(inner)
            if found is not None:
                return found
    return None
