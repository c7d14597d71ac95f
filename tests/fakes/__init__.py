"""Loopback HTTP servers that speak the providers' protocols, for tests.

``FakeOpenAIServer`` (chat completions) and ``FakeAnthropicServer`` (messages) are real HTTP
servers on 127.0.0.1, scriptable with :class:`Reply` items and recording every request. Run the
OpenAI one as a process with ``python -m tests.fakes.openai_server`` (see its docstring).
Names are imported lazily so that ``python -m`` does not import the module twice.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "FakeOpenAIServer": "openai_server",
    "FakeAnthropicServer": "anthropic_server",
    "FakeServer": "server",
    "Recorded": "server",
    "Reply": "server",
    "count_tokens": "server",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(name)
