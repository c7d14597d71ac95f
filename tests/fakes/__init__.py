"""Loopback HTTP servers that speak the providers' protocols, for tests.

``FakeOpenAIServer`` (chat completions) and ``FakeAnthropicServer`` (messages) are real HTTP
servers on 127.0.0.1, scriptable with :class:`Reply` items and recording every request.
"""

from .anthropic_server import FakeAnthropicServer
from .openai_server import FakeOpenAIServer
from .server import FakeServer, Recorded, Reply, count_tokens

__all__ = ["FakeAnthropicServer", "FakeOpenAIServer", "FakeServer", "Recorded", "Reply",
           "count_tokens"]
