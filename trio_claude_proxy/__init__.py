"""trio-claude-proxy: the Anthropic Messages API, served from an OpenAI-compatible backend.

The public surface is small on purpose: build the app, or serve it.
"""

from ._version import __version__ as __version__
from .app import create_app as create_app
from .server import serve as serve
from .settings import Settings as Settings

__all__ = ["Settings", "__version__", "create_app", "serve"]
