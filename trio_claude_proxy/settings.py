"""Settings: command-line flags over environment over a TOML file over defaults.

Every scalar setting but ``max_body_bytes`` has an environment variable of
ours (``CLAUDE_PROXY_*``), the main ones a flag too, and the names the proxies
our users come from read
(``BACKEND_URL``, ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``HOST``, ``PORT``,
``HOST_PORT``, ``LOG_LEVEL``, ``BACKEND_TIMEOUT_SECS``, ``BIG_MODEL``,
``MIDDLE_MODEL``, ``SMALL_MODEL``, ``CUSTOM_HEADER_*``), so an existing ``.env``
keeps working. A ``.env`` file in the working directory is read too; variables
already in the environment win over it. Several backends and the model map
come from the config file only (``[backends.NAME]``, ``[models]``).
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .backends import (
    BackendConfig,
    SettingsError,
    backend_from_table,
    check_headers,
    custom_headers_from_env,
    make_backend,
    normalize_backend_url,
    printable_ascii,
)

__all__ = ["MAX_BODY_BYTES", "ModelTarget", "Settings", "SettingsError", "load_settings",
           "normalize_backend_url", "read_dotenv"]

#: Anthropic's documented limit for a Messages request body.
MAX_BODY_BYTES = 32 * 1024 * 1024

COMPRESSION_MODES = ("none", "compact", "summarize")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class ModelTarget:
    """Where an exact model name goes: a backend model, on a backend or wherever it is found."""

    model: str
    backend: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8082
    #: The backend's OpenAI base URL, e.g. ``http://127.0.0.1:8000/v1``.
    backend_url: str = "http://127.0.0.1:8000/v1"
    #: A fixed key for the backend; None forwards each client's own key.
    backend_key: str | None = None
    #: Dialect preset of the ``backend_url`` backend (see :mod:`.backends`).
    preset: str = "generic"
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
    #: Backend model for Claude model names of each family (opus / sonnet / haiku).
    big_model: str | None = None
    middle_model: str | None = None
    small_model: str | None = None
    #: How often the backends' model lists are refreshed, in the background.
    models_refresh: float = 60.0
    #: Drop Claude Code's per-request ``x-anthropic-billing-header`` system line,
    #: which changes every request and defeats the backend's prefix cache.
    strip_billing_header: bool = True
    #: "none", "compact" (rule-based trimming of the system prompt to
    #: ``compact_budget`` tokens) or "summarize" (one backend call, cached).
    prompt_compression: str = "none"
    compact_budget: int = 4000
    #: The client keys allowed to use the proxy (empty: any key, which is then
    #: forwarded or ignored depending on the backend's own key).
    client_keys: tuple[str, ...] = ()
    #: Exact model names and where they go; wins over the families.
    model_map: Mapping[str, ModelTarget] = field(default_factory=dict)
    #: Headers added to every backend request.
    custom_headers: Mapping[str, str] = field(default_factory=dict)
    #: Declared backends; empty means one backend from ``backend_url``.
    backends: tuple[BackendConfig, ...] = ()

    @property
    def all_backends(self) -> tuple[BackendConfig, ...]:
        """The backends to serve, the default one first."""
        if self.backends:
            return self.backends
        return (
            make_backend("default", self.backend_url, key=self.backend_key, preset=self.preset,
                         headers=dict(self.custom_headers)),
        )


# setting -> environment variables, ours first.
ENV_NAMES: dict[str, tuple[str, ...]] = {
    "host": ("CLAUDE_PROXY_HOST", "HOST"),
    "port": ("CLAUDE_PROXY_PORT", "PORT", "HOST_PORT"),
    "backend_url": ("CLAUDE_PROXY_BACKEND_URL", "BACKEND_URL", "OPENAI_BASE_URL"),
    "backend_key": ("CLAUDE_PROXY_BACKEND_KEY", "OPENAI_API_KEY"),
    "preset": ("CLAUDE_PROXY_PRESET",),
    "log_level": ("CLAUDE_PROXY_LOG_LEVEL", "LOG_LEVEL"),
    "backend_timeout": ("CLAUDE_PROXY_BACKEND_TIMEOUT", "BACKEND_TIMEOUT_SECS"),
    "connect_timeout": ("CLAUDE_PROXY_CONNECT_TIMEOUT",),
    "ping_interval": ("CLAUDE_PROXY_PING_INTERVAL",),
    "graceful_timeout": ("CLAUDE_PROXY_GRACEFUL_TIMEOUT",),
    "keep_alive_timeout": ("CLAUDE_PROXY_KEEP_ALIVE_TIMEOUT",),
    "big_model": ("CLAUDE_PROXY_BIG_MODEL", "BIG_MODEL"),
    "middle_model": ("CLAUDE_PROXY_MIDDLE_MODEL", "MIDDLE_MODEL"),
    "small_model": ("CLAUDE_PROXY_SMALL_MODEL", "SMALL_MODEL"),
    "models_refresh": ("CLAUDE_PROXY_MODELS_REFRESH",),
    "strip_billing_header": ("CLAUDE_PROXY_STRIP_BILLING_HEADER",),
    "prompt_compression": ("CLAUDE_PROXY_PROMPT_COMPRESSION", "PROMPT_COMPRESSION"),
    "compact_budget": ("CLAUDE_PROXY_COMPACT_BUDGET",),
    "client_keys": ("CLAUDE_PROXY_CLIENT_KEYS", "ANTHROPIC_API_KEY"),
}
CONFIG_ENV = "CLAUDE_PROXY_CONFIG"
_SCALARS = {f.name: f.type for f in fields(Settings)} | {"client_keys": "keys"}
_FILE_ONLY = {"backends", "models", "custom_headers"}


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
    file_values: dict[str, Any] = {}
    path = config_path or environ.get(CONFIG_ENV)
    if path:
        file_values = _read_config_file(Path(path))
    values = {k: v for k, v in file_values.items() if k not in _FILE_ONLY}
    # Only our own names (flag, file, CLAUDE_PROXY_BACKEND_URL) add a default
    # backend beside declared ones; an OPENAI_BASE_URL that happens to be in
    # the environment must not.
    explicit_url = "backend_url" in values or flags.get("backend_url") is not None
    for name, variables in ENV_NAMES.items():
        for var in variables:
            if environ.get(var):
                values[name] = environ[var]
                explicit_url = explicit_url or var == "CLAUDE_PROXY_BACKEND_URL"
                break
    values.update({k: v for k, v in flags.items() if v is not None})
    settings = _coerce(values)

    # The environment wins over the file, as for every other setting.
    headers = check_headers({**_table(file_values, "custom_headers"), **custom_headers_from_env(environ)},
                            "custom_headers")
    backends = []
    for name, table in _table(file_values, "backends").items():
        if not isinstance(table, dict):
            raise SettingsError(f"backends.{name}: expected a table")
        backend = backend_from_table(name, table, environ)
        backends.append(replace(backend, headers={**headers, **backend.headers}))
    settings = replace(settings, custom_headers=headers, model_map=_model_map(file_values))
    if backends and explicit_url:  # --backend-url beside declared backends: the default
        backends.insert(0, replace(settings, backends=()).all_backends[0])
    settings = replace(settings, backends=tuple(backends))
    names = [b.name for b in settings.all_backends]
    if len(set(names)) != len(names):
        raise SettingsError(f"backends: the name {_first_duplicate(names)!r} is used twice "
                            "(--backend-url makes a backend named 'default')")
    for backend in settings.all_backends:
        if backend.fallback is not None and backend.fallback not in names:
            raise SettingsError(f"backends.{backend.name}.fallback: no backend named {backend.fallback!r}")
    for alias, target in settings.model_map.items():
        if target.backend is not None and target.backend not in names:
            raise SettingsError(f"models.{alias}: no backend named {target.backend!r}")
    return settings


def _first_duplicate(names: list[str]) -> str:
    return next(n for i, n in enumerate(names) if n in names[:i])


def _table(values: Mapping[str, Any], key: str) -> dict[str, Any]:
    table = values.get(key, {})
    if not isinstance(table, dict):
        raise SettingsError(f"{key}: expected a table")
    return table


def _model_map(file_values: Mapping[str, Any]) -> dict[str, ModelTarget]:
    """``[models]``: ``alias = "model"`` or ``alias = {backend = "b", model = "m"}``."""
    out = {}
    for alias, target in _table(file_values, "models").items():
        if isinstance(target, str):
            out[alias] = ModelTarget(target)
        elif isinstance(target, dict) and isinstance(target.get("model"), str):
            backend = target.get("backend")
            out[alias] = ModelTarget(target["model"], str(backend) if backend else None)
        else:
            raise SettingsError(f"models.{alias}: expected a model name or {{backend, model}}")
    return out


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    known = (set(_SCALARS) | _FILE_ONLY) - {"model_map", "max_body_bytes"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return data


def _coerce(values: dict[str, Any]) -> Settings:
    out: dict[str, Any] = {}
    for name, value in values.items():
        kind = _SCALARS[name]
        try:
            if kind == "int":
                if isinstance(value, bool | float):
                    raise ValueError
                out[name] = int(value)
                if name != "port" and out[name] <= 0:
                    raise ValueError
            elif kind == "float":
                out[name] = float(value)
                if not math.isfinite(out[name]) or out[name] <= 0:
                    raise ValueError
            elif kind == "bool":
                out[name] = _boolean(value)
            elif kind == "keys":
                keys = value.split(",") if isinstance(value, str) else value
                if not isinstance(keys, list | tuple) or not all(isinstance(k, str) for k in keys):
                    raise ValueError
                out[name] = tuple(k.strip() for k in keys if k.strip())
            elif not isinstance(value, str):
                raise ValueError
            else:
                out[name] = value
        except (TypeError, ValueError):
            raise SettingsError(f"{name}: {value!r} is not a valid {kind}") from None
    if "port" in out and not 0 <= out["port"] <= 65535:
        raise SettingsError(f"port: {out['port']} is out of range")
    if "backend_url" in out:
        out["backend_url"] = normalize_backend_url(out["backend_url"])
    if "log_level" in out:
        out["log_level"] = out["log_level"].upper()
    if out.get("prompt_compression", "none") not in COMPRESSION_MODES:
        raise SettingsError(f"prompt_compression: {out['prompt_compression']!r} is not one of "
                            f"{', '.join(COMPRESSION_MODES)}")
    for name in ("backend_key", "big_model", "middle_model", "small_model"):
        if out.get(name) == "":
            out[name] = None
    key = out.get("backend_key")
    if key is not None and not printable_ascii(key):
        raise SettingsError("backend_key: not printable ASCII")
    if out.get("log_level", "INFO") not in LOG_LEVELS:
        raise SettingsError(f"log_level: {out['log_level']!r} is not one of {', '.join(LOG_LEVELS)}")
    return replace(Settings(), **out)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)
