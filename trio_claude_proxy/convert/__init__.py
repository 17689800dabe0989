"""Translation between the Anthropic Messages API and OpenAI chat completions.

Pure functions and one pure state machine: no I/O, no trio, no httpx here.
"""

from .dialect import DEFAULT_DIALECT as DEFAULT_DIALECT
from .dialect import Dialect as Dialect
from .request import to_chat_request as to_chat_request
from .response import accumulate as accumulate
from .response import completion_to_message as completion_to_message
from .stream import StreamTranslator as StreamTranslator
from .validate import validate_request as validate_request

__all__ = [
    "DEFAULT_DIALECT",
    "Dialect",
    "StreamTranslator",
    "accumulate",
    "completion_to_message",
    "to_chat_request",
    "validate_request",
]
