"""The proxy's request pipeline, between the routes and the backends.

For each request: strip the billing line, route the model name, compress the
prompt as configured (a summary is asked of the routed backend), translate for
that backend's dialect, count the prompt (the backend's own
tokenizer where it has one, else the calibrated estimate), fit ``max_tokens`` to
the context window, then send, falling back to another backend when the first
fails before anything was sent to the client.

Background work owned here: refreshing every backend's model list. It runs in
the app's serving nursery, never on a request's path.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import httpx
import trio

from . import prompt, tokens
from .auth import backend_key, check_client
from .catalog import Catalog, static_models
from .convert import StreamTranslator, to_chat_request
from .convert.ids import tool_name_map
from .errors import InvalidRequest, ProxyError
from .routing import Route, fallback_route, resolve
from .settings import Settings
from .upstream import Backend, UpstreamResponse, make_client

log = logging.getLogger(__name__)

# Translate in a worker thread past this size (images, PDFs to extract), and
# count past this many characters (tiktoken releases the GIL).
TRANSLATE_IN_THREAD_BYTES = 256 * 1024
COUNT_IN_THREAD_CHARS = 32 * 1024
#: After a backend's token endpoint fails, use the estimate for this long.
TOKENIZER_RETRY_AFTER = 60.0
#: Distinct system prompts whose summaries are kept.
SUMMARY_CACHE = 32
#: An estimated prompt (not counted by the backend) is refused up front only
#: past the window by this fraction; tiktoken can be 15% off a backend's count.
ESTIMATE_MARGIN = 0.15
#: Output budget sent when an estimated prompt seems to fill the window.
MIN_OUTPUT_TOKENS = 1024


@dataclass(slots=True)
class Prepared:
    """A request ready to send: where, what, and how big its prompt is."""

    request: dict[str, Any]  # the Anthropic request, after prompt handling
    route: Route
    chat: dict[str, Any]  # the translated request
    input_tokens: int  # the best count we have, calibrated
    basis: int  # what was scaled: the backend's count, else our text estimate (no images)
    calibration_key: str  # per backend, model and counting path
    exact: bool  # counted by the backend's tokenizer
    image_tokens: int = 0  # our flat guess for images, outside the calibrated basis


class Proxy:
    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self._owns_client = client is None
        self.client = client or make_client(settings)
        self.backends = {b.name: Backend(b, self.client) for b in settings.all_backends}
        self.catalog = Catalog()
        self._static = static_models(settings.all_backends)
        for name, models in self._static.items():
            self.catalog.update(name, models)
        self.calibrator = tokens.Calibrator()
        self._tokenizer_down: dict[str, float] = {}
        self._summaries: OrderedDict[str, str] = OrderedDict()
        self._summarizing: set[str] = set()

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    # ---- model lists --------------------------------------------------------------

    async def refresh_models(self) -> None:
        """One refresh of every discoverable backend's model list, all at once,
        so a slow or dead backend delays nobody else's."""
        async with trio.open_nursery() as nursery:
            for name, backend in self.backends.items():
                if backend.config.discover:
                    nursery.start_soon(self._refresh_backend, name, backend)

    async def _refresh_backend(self, name: str, backend: Backend) -> None:
        try:
            found = await backend.list_models()
        except ProxyError as exc:
            log.debug("model list of backend %s unavailable: %s", name, exc.message)
            return
        listed = {m.id: m for m in self._static.get(name, [])}
        for model in found:  # config's context wins where it gives one
            known = listed.get(model.id)
            if known is None:
                listed[model.id] = model
            elif known.context_length is None:
                listed[model.id] = replace(model, context_length=model.context_length)
        self.catalog.update(name, listed.values())

    async def refresh_models_forever(self) -> None:
        while True:
            with trio.move_on_after(self.settings.models_refresh):
                await self.refresh_models()
            await trio.sleep(self.settings.models_refresh)

    # ---- the pipeline ----------------------------------------------------------------

    def check_client(self, headers: Mapping[str, str]) -> None:
        check_client(self.settings.client_keys, headers)

    async def prepare(self, body: dict[str, Any], raw_size: int, headers: Mapping[str, str]) -> Prepared:
        request = body
        if self.settings.strip_billing_header:
            request = prompt.strip_billing_header(request)
        route = resolve(request["model"], self.settings, self.catalog)
        request = await self._compress(request, route, headers)
        return await self._prepare_for(request, route, raw_size, headers)

    async def _prepare_for(
        self, request: dict[str, Any], route: Route, raw_size: int, headers: Mapping[str, str]
    ) -> Prepared:
        chat = await self._translate(request, route, raw_size)
        counted = await self._backend_count(route, chat, headers)
        if counted is not None:
            # A tokenize endpoint can still miss what the template adds, so its
            # count is calibrated too (separately: its factor should be near 1).
            key = f"{route.backend.name}\0{route.model}\0backend"
            return Prepared(request, route, chat, self.calibrator.scale(key, counted), counted, key, True)
        text_tokens, image_tokens = await self._estimate(chat)
        key = f"{route.backend.name}\0{route.model}\0tiktoken"
        # Images are a flat guess: kept out of what the calibrator learns from.
        input_tokens = self.calibrator.scale(key, text_tokens) + image_tokens
        return Prepared(request, route, chat, input_tokens, text_tokens, key, False, image_tokens)

    def fit_max_tokens(self, prepared: Prepared) -> None:
        """Clamp the output budget to the context window; refuse a prompt that cannot fit.

        Claude Code asks for 32k-128k output tokens whatever the model; a
        backend would refuse prompt + max_tokens > window outright. An estimate
        (not the backend's own count) refuses only past a margin: a wrong
        refusal cannot correct itself, while a prompt that really overflows
        still gets the backend's error, rephrased the same way.
        """
        window = prepared.route.context_length
        field = prepared.route.backend.dialect.max_tokens_field
        requested = prepared.chat.get(field)
        if window is None or requested is None:
            return
        limit = window if prepared.exact else window * (1 + ESTIMATE_MARGIN)
        if prepared.input_tokens >= limit:
            raise InvalidRequest(f"prompt is too long: {prepared.input_tokens} tokens > {window} maximum")
        room = window - prepared.input_tokens
        prepared.chat[field] = max(1, min(requested, room if room > 0 else MIN_OUTPUT_TOKENS))

    def translator(self, prepared: Prepared) -> StreamTranslator:
        return StreamTranslator(
            model=prepared.request["model"],
            input_tokens=prepared.input_tokens,
            stop_sequences=prepared.request.get("stop_sequences") or (),
            dialect=prepared.route.backend.dialect,
            tool_names=tool_name_map(prepared.request.get("tools")),
        )

    async def open_stream(self, prepared: Prepared, headers: Mapping[str, str]) -> tuple[UpstreamResponse, Prepared]:
        """Open the backend's stream; returns it and what was sent (the fallback's, if used)."""
        return await self._with_fallback(prepared, headers, stream=True)

    async def complete(self, prepared: Prepared, headers: Mapping[str, str]) -> tuple[dict[str, Any], Prepared]:
        completion, used = await self._with_fallback(prepared, headers, stream=False)
        self.learn(used, completion.get("usage"))
        return completion, used

    def learn(self, prepared: Prepared, usage: Any) -> None:
        """Teach the calibrator from a backend-reported prompt count."""
        if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
            reported = usage["prompt_tokens"] - prepared.image_tokens
            self.calibrator.observe(prepared.calibration_key, prepared.basis, reported)

    # ---- steps ---------------------------------------------------------------------------

    async def _send(self, prepared: Prepared, headers: Mapping[str, str], *, stream: bool) -> Any:
        backend = self.backends[prepared.route.backend.name]
        key = backend_key(prepared.route.backend.key, headers)
        if stream:
            return await backend.open_stream(prepared.chat, key)
        return await backend.complete(prepared.chat, key)

    async def _with_fallback(
        self, prepared: Prepared, headers: Mapping[str, str], *, stream: bool
    ) -> tuple[Any, Prepared]:
        try:
            return await self._send(prepared, headers, stream=stream), prepared
        except ProxyError as exc:
            alternative = fallback_route(prepared.route, self.settings, self.catalog)
            if alternative is None or not exc.retryable:
                raise
            log.warning("backend %s failed (%s); trying %s", prepared.route.backend.name, exc.message,
                        alternative.backend.name)
            # The fallback gets a request of its own: its dialect, its model,
            # its window, its calibration.
            other = await self._prepare_for(prepared.request, alternative, 0, headers)
            try:
                self.fit_max_tokens(other)
            except InvalidRequest:
                raise exc from None
            return await self._send(other, headers, stream=stream), other

    async def _translate(self, request: dict[str, Any], route: Route, raw_size: int) -> dict[str, Any]:
        """Translate; a request that passed validation but still trips the
        translator gets a 400 naming the problem (a 500 would be retried forever)."""
        convert = partial(to_chat_request, request, model=route.model, dialect=route.backend.dialect)
        try:
            if raw_size > TRANSLATE_IN_THREAD_BYTES:
                return await trio.to_thread.run_sync(convert)
            return convert()
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            log.exception("could not translate a request that passed validation")
            raise InvalidRequest(f"Cannot translate this request: {type(exc).__name__}: {exc}") from None

    async def _estimate(self, chat: dict[str, Any]) -> tuple[int, int]:
        """(text tokens with framing, image tokens) by tiktoken."""
        text, messages, images = tokens.request_text(chat)
        if len(text) > COUNT_IN_THREAD_CHARS:
            counted = await trio.to_thread.run_sync(tokens.count_text_tokens, text, messages)
        else:
            counted = tokens.count_text_tokens(text, messages)
        return counted, images * tokens.TOKENS_PER_IMAGE

    async def _backend_count(self, route: Route, chat: dict[str, Any], headers: Mapping[str, str]) -> int | None:
        backend = self.backends[route.backend.name]
        if backend.config.tokenizer is None:
            return None
        name = route.backend.name
        if self._tokenizer_down.get(name, 0.0) > trio.current_time():
            return None
        try:
            key = backend_key(route.backend.key, headers)  # refuses to send an sk-ant- key anywhere
        except ProxyError:
            return None
        try:
            return await backend.count_tokens(chat, key)
        except ProxyError as exc:
            log.info("token count from backend %s failed (%s); estimating", name, exc.message)
            if exc.status not in (401, 403):  # one client's bad key says nothing of the endpoint
                self._tokenizer_down[name] = trio.current_time() + TOKENIZER_RETRY_AFTER
            return None

    async def _compress(self, request: dict[str, Any], route: Route, headers: Mapping[str, str]) -> dict[str, Any]:
        mode = self.settings.prompt_compression
        if mode == "none":
            return request
        budget = self.settings.compact_budget
        count = tokens.count_text_tokens
        if mode == "summarize":
            system = prompt.combined_system(request)
            if system and count(system) > budget:
                summary = await self._summary(system, route, headers)
                if summary is not None:
                    return prompt.with_system(request, summary)
        return prompt.compact(request, budget, count)

    async def _summary(self, system: str, route: Route, headers: Mapping[str, str]) -> str | None:
        digest = hashlib.sha256(f"{route.backend.name}\0{route.model}\0{system}".encode()).hexdigest()
        if digest in self._summaries:
            self._summaries.move_to_end(digest)
            return self._summaries[digest]
        if digest in self._summarizing:
            return None  # another request is asking; this one compacts meanwhile
        budget = self.settings.compact_budget
        chat = {"model": route.model, "messages": prompt.summary_request(system, budget),
                route.backend.dialect.max_tokens_field: budget * 2}
        self._summarizing.add(digest)
        try:
            key = backend_key(route.backend.key, headers)
            completion = await self.backends[route.backend.name].complete(chat, key)
            choice = completion["choices"][0]
            text = choice["message"]["content"]
            finish = choice.get("finish_reason")
        except (ProxyError, KeyError, IndexError, TypeError) as exc:
            log.warning("prompt summary failed (%s); compacting instead", exc)
            return None
        finally:
            self._summarizing.discard(digest)
        summary = prompt.clean_summary(text) if finish in (None, "stop") else None
        if summary is None:
            log.warning("prompt summary unusable (finish_reason %s); compacting instead", finish)
            return None
        self._summaries[digest] = summary
        while len(self._summaries) > SUMMARY_CACHE:
            self._summaries.popitem(last=False)
        return summary
