"""Which backend and which backend model serve a requested model name (pure).

In order:

1. an exact name in the ``[models]`` map wins;
2. a Claude family name (``claude-opus-5-5``, ``claude-3-5-haiku-20241022``)
   goes to ``big_model`` / ``middle_model`` / ``small_model`` when set;
3. anything else passes through unchanged.

The name is then looked up in what the backends serve (discovered or listed),
which picks the backend and corrects a difference of case. A name no backend
knows goes to the default backend, unless that backend's model list is known,
in which case the client gets 404 listing what is available (Claude Code shows
that message, which is more use than the backend's own 404).
"""

from __future__ import annotations

from dataclasses import dataclass

from .backends import BackendConfig
from .catalog import Catalog
from .errors import NotFound
from .settings import Settings

_FAMILIES = (("opus", "big_model"), ("sonnet", "middle_model"), ("haiku", "small_model"))


@dataclass(frozen=True, slots=True)
class Route:
    backend: BackendConfig
    model: str
    context_length: int | None = None


def mapped_name(name: str, settings: Settings) -> tuple[str, str | None]:
    """(backend model name, backend name or None) after the map and the families."""
    target = settings.model_map.get(name)
    if target is not None:
        return target.model, target.backend
    lowered = name.lower()
    if "claude" in lowered:
        for family, setting in _FAMILIES:
            model = getattr(settings, setting)
            if family in lowered and model:
                return model, None
    return name, None


def resolve(name: str, settings: Settings, catalog: Catalog) -> Route:
    """Route a requested model name.

    Raises:
        NotFound: the name is unknown to a backend whose model list is known.
    """
    backends = {b.name: b for b in settings.all_backends}
    model, backend_name = mapped_name(name, settings)
    search = [backend_name] if backend_name else list(backends)
    info = catalog.find(model, search)
    if info is not None:
        backend = backends[info.backend]
        return Route(backend, info.id, backend.context_length or info.context_length)
    backend = backends[backend_name] if backend_name else settings.all_backends[0]
    if catalog.known(backend.name):
        available = sorted(m.id for m in catalog.models(backend.name))
        shown = ", ".join(available[:50]) + (", ..." if len(available) > 50 else "")
        raise NotFound(f"model: {name} not found. Available models: {shown}")
    return Route(backend, model, backend.context_length)


def fallback_route(route: Route, settings: Settings, catalog: Catalog) -> Route | None:
    """The route to try when ``route``'s backend fails before any byte was sent."""
    name = route.backend.fallback
    if name is None:
        return None
    backend = next(b for b in settings.all_backends if b.name == name)
    model = route.backend.fallback_model or route.model
    info = catalog.find(model, [backend.name])
    if info is not None:
        return Route(backend, info.id, backend.context_length or info.context_length)
    return Route(backend, model, backend.context_length)
