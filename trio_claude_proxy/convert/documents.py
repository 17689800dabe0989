"""Documents a backend cannot read natively, turned into text (pure).

Most OpenAI-compatible servers (vLLM, SGLang, llama.cpp, Ollama) take no PDF
input, so a ``document`` block with a base64 PDF would otherwise be lost. We
extract its text with pypdf, a maintained pure-Python library (no native
code, no network). Work is bounded: at most :data:`MAX_PAGES` pages and
:data:`MAX_CHARS` characters; pypdf itself caps decompressed stream sizes.
Only a PDF with no extractable text (a scan) becomes a placeholder.
"""

from __future__ import annotations

import base64
import binascii
import io

MAX_PAGES = 500
MAX_CHARS = 2_000_000


def pdf_text(data_b64: str) -> tuple[str, int] | None:
    """(text, page count) of a base64 PDF; None if it cannot be read at all."""
    try:
        data = base64.b64decode(data_b64, validate=False)
    except (binascii.Error, ValueError):
        return None
    try:
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data))
        pages = len(reader.pages)
        texts: list[str] = []
        size = 0
        for number, page in enumerate(reader.pages[:MAX_PAGES], start=1):
            text = (page.extract_text() or "").strip()
            if text:
                texts.append(f"[Page {number}]\n{text}")
                size += len(text)
            if size > MAX_CHARS:
                texts.append("[... truncated]")
                break
    except Exception:  # pypdf raises many kinds on malformed files
        return None
    return "\n\n".join(texts), pages
