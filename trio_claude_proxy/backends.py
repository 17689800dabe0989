"""Backends as configuration: where each is, how to authenticate, which dialect it speaks.

A backend is declared in the config file (``[backends.NAME]``) or, for the
one-backend case, by ``--backend-url``. Its ``preset`` fills in the knobs in
which OpenAI-compatible servers differ; any knob can be overridden per backend.

=============== ================================================================
preset          what it sets
=============== ================================================================
``generic``     nothing: plain OpenAI chat completions
``vllm``        ``top_k``; exact counts from ``POST /tokenize`` (chat form);
                context from ``/v1/models`` ``max_model_len``
``sglang``      ``top_k``; context from ``max_model_len``
``llamacpp``    ``top_k``; exact counts via ``/apply-template`` + ``/tokenize``;
                context from ``/props``
``llama-cpp-python``  counts from ``/extras/tokenize/count``; no ``stream_options``;
                structured output as ``json_object`` with a schema
``ollama``      defaults (Ollama's ``/v1`` ignores unknown fields)
``openrouter``  ``reasoning: {effort}``; ``reasoning_details`` replayed; PDFs
                as file parts; context from ``context_length``
``deepseek``    ``thinking`` + ``reasoning_effort``; thinking goes back as
                ``reasoning_content`` (required on tool turns)
``groq``        at most 4 stop strings; no reasoning in history
``together``    ``top_k``
``openai``      ``max_completion_tokens``; 4 stop strings; PDFs as file parts;
                no ``<think>`` parsing; no reasoning in history
``azure``       as ``openai``, plus ``api-key`` auth and, with ``api_version``,
                the ``/deployments/{model}/chat/completions?api-version=`` path
=============== ================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .convert.dialect import Dialect


class SettingsError(Exception):
    """A setting has a value we cannot use; the message says which and why."""


def printable_ascii(text: str) -> bool:
    """What an HTTP/1.1 header (a key, a custom header) can carry."""
    return text.isascii() and text.isprintable()


def redact_url(url: str) -> str:
    """A URL fit for logs: no user:password, no query (Azure-style keys ride there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


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

_OPENAI_LIKE: dict[str, Any] = {
    "max_tokens_field": "max_completion_tokens",
    "max_stop_sequences": 4,
    "pdf_file_parts": True,
    "parse_think_tags": False,
    "reasoning_history_field": None,
}

# preset -> (dialect knobs, backend knobs)
PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "generic": ({}, {}),
    "vllm": ({"send_top_k": True}, {"tokenizer": "vllm"}),
    "sglang": ({"send_top_k": True}, {}),
    "llamacpp": ({"send_top_k": True}, {"tokenizer": "llamacpp"}),
    "llama-cpp-python": ({"stream_usage": False, "response_format": "json_object"},
                         {"tokenizer": "llama-cpp-python"}),
    "ollama": ({}, {}),
    "openrouter": ({"reasoning": "openrouter", "pdf_file_parts": True, "replay_reasoning_details": True}, {}),
    "deepseek": ({"reasoning": "deepseek"}, {}),
    "groq": ({"max_stop_sequences": 4, "reasoning_history_field": None}, {}),
    "together": ({"send_top_k": True}, {}),
    "openai": (_OPENAI_LIKE, {}),
    "azure": (_OPENAI_LIKE, {"auth_header": "api-key"}),
}

_DIALECT_FIELDS = {f.name for f in fields(Dialect)}


_KNOB_CHECKS: dict[str, Any] = {
    "max_tokens_field": lambda v: v in ("max_tokens", "max_completion_tokens"),
    "send_top_k": lambda v: isinstance(v, bool),
    "reasoning_history_field": lambda v: v in ("reasoning_content", "reasoning") or v == "",
    "parse_think_tags": lambda v: isinstance(v, bool),
    "stream_usage": lambda v: isinstance(v, bool),
    "reasoning": lambda v: v in ("", "reasoning_effort", "openrouter", "deepseek", "chat_template_kwargs"),
    "replay_reasoning_details": lambda v: isinstance(v, bool),
    "max_stop_sequences": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
    "pdf_file_parts": lambda v: isinstance(v, bool),
    "response_format": lambda v: v in ("", "json_schema", "json_object"),
}
assert set(_KNOB_CHECKS) == _DIALECT_FIELDS, "every Dialect knob needs a check"


@dataclass(frozen=True, slots=True)
class BackendConfig:
    name: str
    url: str
    #: A fixed key for this backend; None forwards the client's key.
    key: str | None = None
    preset: str = "generic"
    dialect: Dialect = field(default_factory=Dialect)
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Models served, if listed in config (otherwise discovered from /v1/models).
    models: tuple[str, ...] = ()
    #: Context window for all its models, overriding what discovery finds.
    context_length: int | None = None
    #: Another backend to try when this one fails before any byte was sent.
    fallback: str | None = None
    fallback_model: str | None = None
    #: Azure's api-version; with it, the model names the deployment in the path.
    api_version: str | None = None
    #: Token-count endpoint flavour: "vllm", "llamacpp", "llama-cpp-python" or None.
    tokenizer: str | None = None
    #: "authorization" (Bearer) or "api-key" (Azure).
    auth_header: str = "authorization"
    discover: bool = True

    @property
    def root_url(self) -> str:
        """The server root: vLLM's and llama.cpp's /tokenize live outside /v1."""
        base = self.url.split("?", 1)[0].rstrip("/")
        return base[: -len("/v1")] if base.endswith("/v1") else base

    def chat_completions_url(self, model: str) -> str:
        base, _, query = self.url.partition("?")
        base = base.rstrip("/")
        if self.api_version:
            path = f"{base}/deployments/{model}/chat/completions"
            return f"{path}?api-version={self.api_version}"
        return f"{base}/chat/completions" + (f"?{query}" if query else "")

    @property
    def models_url(self) -> str:
        base, _, query = self.url.partition("?")
        if self.api_version:
            query = f"api-version={self.api_version}"
        return f"{base.rstrip('/')}/models" + (f"?{query}" if query else "")


_BACKEND_KEYS = {
    "url", "key", "key_env", "preset", "headers", "models", "context_length", "fallback",
    "fallback_model", "api_version", "tokenizer", "discover", "dialect",
}


def backend_from_table(name: str, table: Mapping[str, Any], environ: Mapping[str, str]) -> BackendConfig:
    """One ``[backends.NAME]`` table. ``key_env`` names the variable holding the key,
    so the key need not sit in the file (``key`` is accepted too, for local
    setups); ``dialect`` overrides preset knobs."""
    where = f"backends.{name}"
    unknown = sorted(set(table) - _BACKEND_KEYS)
    if unknown:
        raise SettingsError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    if "url" not in table:
        raise SettingsError(f"{where}: url is required")
    strings = {k: _string(table, k, where) for k in
               ("url", "key", "key_env", "preset", "fallback", "fallback_model", "api_version", "tokenizer")}
    key = strings["key"]
    if strings["key_env"]:
        key = environ.get(strings["key_env"]) or key
    if key is not None and not printable_ascii(key):
        raise SettingsError(f"{where}: the key is not printable ASCII")
    preset = strings["preset"] or "generic"
    models = table.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise SettingsError(f"{where}.models: expected a list of names")
    context = table.get("context_length")
    if context is not None and (not isinstance(context, int) or isinstance(context, bool) or context <= 0):
        raise SettingsError(f"{where}.context_length: expected a positive integer")
    discover = table.get("discover", True)
    if not isinstance(discover, bool):
        raise SettingsError(f"{where}.discover: expected true or false")
    if strings["tokenizer"] not in (None, *TOKENIZERS):
        raise SettingsError(f"{where}.tokenizer: expected one of {', '.join(TOKENIZERS)}")
    return make_backend(
        name,
        strings["url"] or "",
        key=key,
        preset=preset,
        headers=check_headers(table.get("headers", {}), f"{where}.headers"),
        models=tuple(models),
        context_length=context,
        fallback=strings["fallback"],
        fallback_model=strings["fallback_model"],
        api_version=strings["api_version"] or (environ.get("AZURE_API_VERSION") if preset == "azure" else None),
        tokenizer=strings["tokenizer"],
        discover=discover,
        dialect_overrides=table.get("dialect", {}),
    )


TOKENIZERS = ("vllm", "llamacpp", "llama-cpp-python")


def _string(table: Mapping[str, Any], key: str, where: str) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise SettingsError(f"{where}.{key}: expected a string")
    return value


def check_headers(headers: Any, where: str) -> dict[str, str]:
    """Header names and values as strings of printable ASCII (what HTTP/1.1 carries)."""
    if not isinstance(headers, Mapping):
        raise SettingsError(f"{where}: expected a table of header names and values")
    out = {}
    for name, value in headers.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise SettingsError(f"{where}.{name}: expected a string")
        text = str(value)
        if not (printable_ascii(str(name)) and printable_ascii(text)):
            raise SettingsError(f"{where}.{name}: header names and values must be printable ASCII")
        out[str(name)] = text
    return out


def make_backend(
    name: str,
    url: str,
    *,
    preset: str = "generic",
    dialect_overrides: Mapping[str, Any] | None = None,
    **knobs: Any,
) -> BackendConfig:
    if preset not in PRESETS:
        raise SettingsError(f"backends.{name}.preset: {preset!r} is not one of {', '.join(PRESETS)}")
    dialect_knobs, backend_knobs = PRESETS[preset]
    if not isinstance(dialect_overrides or {}, Mapping):
        raise SettingsError(f"backends.{name}.dialect: expected a table of knobs")
    overrides = dict(dialect_overrides or {})
    unknown = sorted(set(overrides) - _DIALECT_FIELDS)
    if unknown:
        raise SettingsError(f"backends.{name}.dialect: unknown knob(s) {', '.join(unknown)}")
    for knob, value in overrides.items():
        if not _KNOB_CHECKS[knob](value):
            raise SettingsError(f"backends.{name}.dialect.{knob}: {value!r} is not a valid value")
    # TOML has no null: an empty string turns an optional knob off.
    overrides = {k: (None if v == "" else v) for k, v in overrides.items()}
    dialect = replace(Dialect(), **{**dialect_knobs, **overrides})
    given = {k: v for k, v in knobs.items() if v is not None}
    return BackendConfig(
        name=name,
        url=normalize_backend_url(url),
        preset=preset,
        dialect=dialect,
        **{**backend_knobs, **given},
    )


def custom_headers_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """``CUSTOM_HEADER_X_TEAM=a`` -> ``X-Team: a`` (the convention of the proxies we replace)."""
    out = {}
    for var, value in environ.items():
        if var.startswith("CUSTOM_HEADER_") and len(var) > len("CUSTOM_HEADER_"):
            name = "-".join(part.capitalize() for part in var[len("CUSTOM_HEADER_") :].split("_"))
            out[name] = value
    return out
