"""SDK clients shared by the calls in flight on one event loop, closed when the last ends.

An async SDK client's connection pool belongs to the loop that opened it; one left open when
its loop closes fails noisily when garbage-collected. Concurrent calls share a client (and
its connections); it is closed as soon as no call uses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

C = TypeVar("C")

RESPONSE_HOOKS: list[Callable[[Any], None]] = []
"""Called with every HTTP response (an ``httpx.Response``) a pooled SDK client receives,
retries included: the batch rate limiter watches for 429s here."""
REQUEST_HOOKS: list[Callable[[Any], Awaitable[None]]] = []
"""Awaited with every HTTP request (an ``httpx.Request``) just before a pooled SDK client
sends it, retries included: the batch rate limiter holds each attempt here until it may
leave."""


async def _notify(response: Any) -> None:
    for hook in list(RESPONSE_HOOKS):
        hook(response)


async def _before(request: Any) -> None:
    for hook in list(REQUEST_HOOKS):
        await hook(request)


def _observe(client: Any) -> Any:
    hooks = getattr(getattr(client, "_client", None), "event_hooks", None)  # the SDK's httpx
    if isinstance(hooks, dict):
        if _notify not in hooks.setdefault("response", []):
            hooks["response"].append(_notify)
        if _before not in hooks.setdefault("request", []):
            hooks["request"].append(_before)
    return client


def observed(client_pool: Any) -> bool:
    """Whether ``client_pool`` is a :class:`ClientPool` (its requests pass the hooks)."""
    return isinstance(client_pool, ClientPool)


class ClientPool(Generic[C]):
    def __init__(self, factory: Callable[[], C]) -> None:
        self._factory = factory
        self._held: dict[asyncio.AbstractEventLoop, list[Any]] = {}

    @asynccontextmanager
    async def use(self) -> AsyncIterator[C]:
        loop = asyncio.get_running_loop()
        held = self._held.get(loop)
        if held is None:
            held = self._held[loop] = [_observe(self._factory()), 0]
        held[1] += 1
        try:
            yield held[0]
        finally:
            held[1] -= 1
            if held[1] == 0:
                if self._held.get(loop) is held:
                    del self._held[loop]
                await held[0].close()
