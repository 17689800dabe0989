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
``llama-cpp-python``  counts from ``/extras/tokenize/count``; no ``stream_options``
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
    "llama-cpp-python": ({"stream_usage": False}, {"tokenizer": "llama-cpp-python"}),
    "ollama": ({}, {}),
    "openrouter": ({"reasoning": "openrouter", "pdf_file_parts": True, "replay_reasoning_details": True}, {}),
    "deepseek": ({"reasoning": "deepseek"}, {}),
    "groq": ({"max_stop_sequences": 4, "reasoning_history_field": None}, {}),
    "together": ({"send_top_k": True}, {}),
    "openai": (_OPENAI_LIKE, {}),
    "azure": (_OPENAI_LIKE, {"auth_header": "api-key"}),
}

_DIALECT_FIELDS = {f.name for f in fields(Dialect)}


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
        return f"{base.rstrip('/')}/models" + (f"?{query}" if query else "")


_BACKEND_KEYS = {
    "url", "key", "key_env", "preset", "headers", "models", "context_length", "fallback",
    "fallback_model", "api_version", "tokenizer", "discover", "dialect",
}


def backend_from_table(name: str, table: Mapping[str, Any], environ: Mapping[str, str]) -> BackendConfig:
    """One ``[backends.NAME]`` table. ``key_env`` names the variable holding the key,
    so the key itself never sits in the file; ``dialect`` overrides preset knobs."""
    unknown = sorted(set(table) - _BACKEND_KEYS)
    if unknown:
        raise SettingsError(f"backends.{name}: unknown setting(s) {', '.join(unknown)}")
    if "url" not in table:
        raise SettingsError(f"backends.{name}: url is required")
    key = table.get("key")
    if table.get("key_env"):
        key = environ.get(str(table["key_env"])) or key
    preset = str(table.get("preset", "generic"))
    headers = table.get("headers", {})
    if not isinstance(headers, dict):
        raise SettingsError(f"backends.{name}.headers: expected a table")
    models = table.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise SettingsError(f"backends.{name}.models: expected a list of names")
    context = table.get("context_length")
    if context is not None and (not isinstance(context, int) or context <= 0):
        raise SettingsError(f"backends.{name}.context_length: expected a positive integer")
    return make_backend(
        name,
        str(table["url"]),
        key=key,
        preset=preset,
        headers={str(k): str(v) for k, v in headers.items()},
        models=tuple(models),
        context_length=context,
        fallback=table.get("fallback"),
        fallback_model=table.get("fallback_model"),
        api_version=table.get("api_version") or (environ.get("AZURE_API_VERSION") if preset == "azure" else None),
        tokenizer=table.get("tokenizer"),
        discover=bool(table.get("discover", True)),
        dialect_overrides=table.get("dialect", {}),
    )


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
    overrides = dict(dialect_overrides or {})
    unknown = sorted(set(overrides) - _DIALECT_FIELDS)
    if unknown:
        raise SettingsError(f"backends.{name}.dialect: unknown knob(s) {', '.join(unknown)}")
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
