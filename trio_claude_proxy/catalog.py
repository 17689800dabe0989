"""What each backend serves: model names and context windows (pure).

Filled from the backends' ``GET /v1/models`` (refreshed in the background, never
on a request's path) and from config. Context windows come from where each
server reports them: vLLM and SGLang ``max_model_len``, OpenRouter
``context_length``, llama.cpp ``/props`` (``default_generation_settings.n_ctx``,
the configured window; ``/v1/models`` only has the training one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    backend: str
    context_length: int | None = None
    created: int | None = None


def parse_models(backend: str, body: Any) -> list[ModelInfo]:
    """The models in a ``/v1/models`` body, whatever the server's extra fields."""
    data = body.get("data") if isinstance(body, dict) else body
    if not isinstance(data, list):
        return []
    out = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        context = None
        for key in ("max_model_len", "context_length", "context_window", "max_context_length"):
            value = item.get(key)
            if isinstance(value, int) and value > 0:
                context = value
                break
        created = item.get("created")
        out.append(ModelInfo(item["id"], backend, context, created if isinstance(created, int) else None))
    return out


def context_from_props(body: Any) -> int | None:
    """llama.cpp ``GET /props``: the context the server was started with."""
    if not isinstance(body, dict):
        return None
    settings = body.get("default_generation_settings")
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    if n_ctx is None:
        n_ctx = body.get("n_ctx")
    return n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None


class Catalog:
    """Models per backend. Replaced wholesale per backend on each refresh."""

    def __init__(self) -> None:
        self._by_backend: dict[str, dict[str, ModelInfo]] = {}

    def update(self, backend: str, models: Iterable[ModelInfo]) -> None:
        self._by_backend[backend] = {m.id: m for m in models}

    def known(self, backend: str) -> bool:
        """Whether we have a (non-empty) list for ``backend`` to check names against."""
        return bool(self._by_backend.get(backend))

    def models(self, backend: str | None = None) -> list[ModelInfo]:
        if backend is not None:
            return list(self._by_backend.get(backend, {}).values())
        return [m for models in self._by_backend.values() for m in models.values()]

    def find(self, name: str, backends: Iterable[str]) -> ModelInfo | None:
        """``name`` on the first of ``backends`` that has it, exactly or but for case."""
        order = list(backends)
        for backend in order:
            info = self._by_backend.get(backend, {}).get(name)
            if info is not None:
                return info
        folded = name.casefold()
        for backend in order:
            for info in self._by_backend.get(backend, {}).values():
                if info.id.casefold() == folded:
                    return info
        return None


def static_models(backends: Iterable[Any]) -> dict[str, list[ModelInfo]]:
    """Models listed in config, per backend (used until and unless discovery finds more)."""
    out: dict[str, list[ModelInfo]] = {}
    for backend in backends:
        if backend.models:
            out[backend.name] = [ModelInfo(m, backend.name, backend.context_length) for m in backend.models]
    return out
