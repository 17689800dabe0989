"""Settings: command-line flags over environment over a TOML file over defaults.

Every setting has a flag, our own environment variable (``CLAUDE_PROXY_*``) and
the names the proxies our users come from read (``BACKEND_URL``,
``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``HOST``, ``PORT``, ``HOST_PORT``,
``LOG_LEVEL``, ``BACKEND_TIMEOUT_SECS``), so an existing ``.env`` keeps
working. A ``.env`` file in the working directory is read too; variables
already in the environment win over it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: Anthropic's documented limit for a Messages request body.
MAX_BODY_BYTES = 32 * 1024 * 1024


class SettingsError(Exception):
    """A setting has a value we cannot use; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8082
    #: The backend's OpenAI base URL, e.g. ``http://127.0.0.1:8000/v1``.
    backend_url: str = "http://127.0.0.1:8000/v1"
    #: A fixed key for the backend; None forwards each client's own key.
    backend_key: str | None = None
    log_level: str = "INFO"
    #: Longest wait for the backend's next byte (an idle gap, not the total).
    backend_timeout: float = 600.0
    connect_timeout: float = 10.0
    #: Send ``event: ping`` after this many seconds without writing to the client.
    #: Claude Code shows a stall banner after about 20 s of silence.
    ping_interval: float = 15.0
    #: On SIGTERM, how long in-flight requests may take to finish.
    graceful_timeout: float = 20.0
    #: Idle keep-alive connections are kept this long; Claude Code reuses
    #: connections after minutes of thinking, and Hypercorn's 5 s default
    #: makes its next POST fail with "socket closed unexpectedly".
    keep_alive_timeout: float = 120.0
    max_body_bytes: int = MAX_BODY_BYTES

    @property
    def chat_completions_url(self) -> str:
        parts = urlsplit(self.backend_url)
        path = parts.path.rstrip("/") + "/chat/completions"
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


# setting -> environment variables, ours first.
ENV_NAMES: dict[str, tuple[str, ...]] = {
    "host": ("CLAUDE_PROXY_HOST", "HOST"),
    "port": ("CLAUDE_PROXY_PORT", "PORT", "HOST_PORT"),
    "backend_url": ("CLAUDE_PROXY_BACKEND_URL", "BACKEND_URL", "OPENAI_BASE_URL"),
    "backend_key": ("CLAUDE_PROXY_BACKEND_KEY", "OPENAI_API_KEY"),
    "log_level": ("CLAUDE_PROXY_LOG_LEVEL", "LOG_LEVEL"),
    "backend_timeout": ("CLAUDE_PROXY_BACKEND_TIMEOUT", "BACKEND_TIMEOUT_SECS"),
    "connect_timeout": ("CLAUDE_PROXY_CONNECT_TIMEOUT",),
    "ping_interval": ("CLAUDE_PROXY_PING_INTERVAL",),
    "graceful_timeout": ("CLAUDE_PROXY_GRACEFUL_TIMEOUT",),
    "keep_alive_timeout": ("CLAUDE_PROXY_KEEP_ALIVE_TIMEOUT",),
}
CONFIG_ENV = "CLAUDE_PROXY_CONFIG"


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines, with ``export``, quotes and ``#`` comments allowed."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return values
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def load_settings(
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    *,
    config_path: str | None = None,
) -> Settings:
    """Merge the sources. ``flags`` holds only the flags the user gave.

    Raises:
        SettingsError: a value is malformed or the config file unreadable.
    """
    if environ is None:
        environ = {**read_dotenv(Path(".env")), **os.environ}
    values: dict[str, Any] = {}
    path = config_path or environ.get(CONFIG_ENV)
    if path:
        values.update(_read_config_file(Path(path)))
    for name, variables in ENV_NAMES.items():
        for var in variables:
            if environ.get(var):
                values[name] = environ[var]
                break
    values.update({k: v for k, v in flags.items() if v is not None})
    return _coerce(values)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return data


def _coerce(values: dict[str, Any]) -> Settings:
    settings = Settings()
    types = {f.name: f.type for f in fields(Settings)}
    out: dict[str, Any] = {}
    for name, value in values.items():
        kind = types[name]
        try:
            if kind == "int":
                out[name] = int(value)
            elif kind == "float":
                out[name] = float(value)
                if out[name] <= 0:
                    raise ValueError
            else:
                out[name] = str(value) if value is not None else None
        except (TypeError, ValueError):
            raise SettingsError(f"{name}: {value!r} is not a valid {kind}") from None
    if "port" in out and not 0 <= out["port"] <= 65535:
        raise SettingsError(f"port: {out['port']} is out of range")
    if "backend_url" in out:
        out["backend_url"] = normalize_backend_url(out["backend_url"])
    if "log_level" in out:
        out["log_level"] = out["log_level"].upper()
    if out.get("backend_key") == "":
        out["backend_key"] = None
    return replace(settings, **out)


def normalize_backend_url(url: str) -> str:
    """Accept ``http://h:p``, ``http://h:p/v1``, or a full ``.../chat/completions`` URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"backend_url: {url!r} is not an http(s) URL")
    path = parts.path.rstrip("/")
    if path.endswith("/chat/completions"):
        path = path[: -len("/chat/completions")]
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
