"""The knobs in which OpenAI-compatible backends differ.

One frozen record per backend; the converters read it and never branch on a
backend's name. Presets (vLLM, llama.cpp, DeepSeek...) are values of this type.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Dialect:
    #: Name of the output-length field: OpenAI's reasoning models and GPT-5
    #: reject ``max_tokens`` and want ``max_completion_tokens``.
    max_tokens_field: str = "max_tokens"
    #: Forward ``top_k`` (vLLM, SGLang, llama.cpp accept it; OpenAI rejects it).
    send_top_k: bool = False
    #: Field that carries thinking back on assistant history. DeepSeek answers
    #: 400 on tool turns without ``reasoning_content``; None drops thinking.
    reasoning_history_field: str | None = "reasoning_content"
    #: Parse ``<think>...</think>`` at the start of content into thinking blocks.
    parse_think_tags: bool = True
    #: Ask for ``stream_options.include_usage`` (the usage chunk after finish_reason).
    stream_usage: bool = True
    #: How the request's ``thinking`` / ``output_config.effort`` reach the backend:
    #: None (not at all: the default, as support varies by model), ``"reasoning_effort"``
    #: (OpenAI's reasoning models, vLLM, Groq: set it per backend),
    #: ``"openrouter"`` (``reasoning: {effort}``), ``"deepseek"``
    #: (``thinking: {type}`` + ``reasoning_effort``), or ``"chat_template_kwargs"``
    #: (``enable_thinking`` for Qwen-style templates on vLLM and SGLang).
    reasoning: str | None = None
    #: Send OpenRouter's ``reasoning_details`` back on assistant turns (carried
    #: in our thinking signatures), so reasoning models keep their chain.
    replay_reasoning_details: bool = False
    #: OpenAI, Azure and Groq accept at most 4 stop strings; None: no limit.
    max_stop_sequences: int | None = None
    #: How structured-output requests are sent: ``"json_schema"`` (OpenAI's
    #: ``response_format``), ``"json_object"`` (``{"type":"json_object",
    #: "schema":..}``, all llama-cpp-python takes) or None (not at all).
    response_format: str | None = "json_schema"
    #: Send base64 PDFs as OpenAI ``file`` parts (OpenAI, OpenRouter read them);
    #: otherwise their text is extracted here.
    pdf_file_parts: bool = False


DEFAULT_DIALECT = Dialect()
