"""A rate limiter shared by every run in a batch: requests and tokens per minute per provider.

Two token buckets per key (a provider and its endpoint): one counts requests, one counts
tokens. A request takes one request and its estimated tokens (prompt plus the answer it may
give) *in advance*: the buckets may go negative, and the caller waits until they would have
refilled. Reservations are handed out in arrival order, so a hundred runs waiting on one key
leave at the limit's pace instead of all at once when the window turns over. After the answer,
:meth:`RateLimiter.settle` puts back what the estimate took too much (or takes what it took
too little).

The buckets hold at most ``burst`` seconds of refill, so within any window of a minute no more
than ``limit * headroom * (1 + burst/60)`` leave; with the default ``headroom`` (0.95) and
``burst`` (2 s) that is 98 % of the limit, under the provider's own sliding-window limit.

Buckets book requests in advance; a stalled event loop can then release several late ones
together. So the last step, :meth:`RateLimiter.admit`, runs as each HTTP attempt is about to
leave (the client pool's request hook, so an SDK-level retry or a second form of the same
call is counted too) and holds it while the key's limit already left within the last
``minute + skew`` seconds. The provider counts *arrivals* in its own sliding minute; a
request admitted at ``c`` arrives at ``c + d`` with a delay ``d`` that varies (event-loop
turns between the check and the socket, the network, the server's accept queue). If the
delays of any two requests differ by at most ``skew``, no provider minute sees more than the
limit: the arrivals in ``(t - minute, t]`` were admitted within ``minute + skew``. ``skew``
is real seconds (delays do not shrink when a benchmark compresses the minute); a 429 that
gets through anyway widens the key's skew by half (up to ``MAX_SKEW``), once per cool-down.

A 429 slows everyone down: :meth:`RateLimiter.penalize` sets a cool-down (the server's
``Retry-After``, else a few seconds) that every caller on that key honours before its next
request, and lowers the key's rate by 15 % (once per cool-down: 429s answered together are one
overload), which then recovers by 30 % of the limit a minute.

Time is injectable (``clock`` and ``sleep``) so the arithmetic is tested without timing luck.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from papercoder.models.base import Completion, Message, Schema


@dataclass(frozen=True)
class Limits:
    """Requests and tokens per minute; None means unlimited."""

    rpm: float | None = None
    tpm: float | None = None

    @property
    def empty(self) -> bool:
        return self.rpm is None and self.tpm is None


DEFAULT_COOLDOWN = 5.0
"""Seconds everyone waits after a 429 that gave no Retry-After."""
MAX_COOLDOWN = 120.0
SLOWDOWN = 0.85
"""Each 429 multiplies a key's rate by this factor..."""
MIN_FACTOR = 0.25
DEFAULT_SKEW = 1.0
"""Seconds by which two requests' admission-to-arrival delays may differ (see above)."""
MAX_SKEW = 10.0
SKEW_GROWTH = 1.5
RECOVERY_PER_MINUTE = 0.3
"""...which then recovers linearly by this fraction of the limit per minute without 429s
(from one 429: back to the full rate in half a minute)."""


@dataclass
class Bucket:
    """A token bucket that lends: ``level`` may go negative; callers wait for the debt."""

    rate: float  # units per second
    capacity: float
    level: float = 0.0
    stamp: float = 0.0

    def refill(self, now: float, factor: float = 1.0) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate * factor)
            self.stamp = now

    def take(self, amount: float, now: float, factor: float = 1.0) -> float:
        """Take ``amount`` now; returns the seconds until the bucket is out of debt."""
        self.refill(now, factor)
        self.level -= min(amount, self.capacity) if self.capacity > 0 else amount
        return 0.0 if self.level >= 0 else -self.level / (self.rate * factor)


@dataclass
class _Key:
    limits: Limits
    requests: Bucket | None
    tokens: Bucket | None
    cooldown_until: float = 0.0
    factor: float = 1.0
    factor_stamp: float = 0.0
    throttled: int = 0
    """429s seen on this key."""
    sent: deque[float] = field(default_factory=deque)
    """When requests actually left, for the sliding-minute check."""
    skew: float = DEFAULT_SKEW
    granted: int = 0
    waited: float = 0.0


async def wait_out(ask: Callable[[], float | Awaitable[float]],
                   sleep: Callable[[float], Awaitable[Any]], *, once: bool = False) -> float:
    """Sleep for the seconds ``ask()`` answers (a number, or an awaitable one such as a Ray
    actor call) until it answers 0, or just once with ``once``; returns seconds slept. The
    one waiting loop behind both limiters' ``acquire``/``depart``."""
    waited = 0.0
    while True:
        wait = ask()
        wait = await wait if inspect.isawaitable(wait) else wait
        if wait <= 0:
            return waited
        await sleep(wait)
        waited += wait
        if once:
            return waited


class RateLimiter:
    """Shared limits; one instance serves every concurrent run (or lives in a Ray actor)."""

    def __init__(
        self,
        limits: dict[str, Limits] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        headroom: float = 0.95,
        burst: float = 2.0,
        recovery: float = RECOVERY_PER_MINUTE,
        minute: float = 60.0,
        skew: float = DEFAULT_SKEW,
    ) -> None:
        self.clock = clock
        self.recovery = recovery
        self.minute = minute
        """Clock seconds per minute (benchmarks compress time; 60 otherwise)."""
        self.sleep = sleep
        self.headroom = headroom
        self.burst = burst
        self.skew = skew
        """Real seconds added to the sliding minute of :meth:`admit` (not compressed)."""
        self._limits = dict(limits or {})
        self._keys: dict[str, _Key] = {}

    # -- configuration --------------------------------------------------------------------
    def configure(self, key: str, limits: Limits) -> None:
        """Set the limits of ``key`` (first setting wins: runs agree on one table)."""
        if key not in self._limits:
            self._limits[key] = limits
            self._keys.pop(key, None)

    def _key(self, key: str) -> _Key:
        k = self._keys.get(key)
        if k is None:
            lim = self._limits.get(key, Limits())
            now = self.clock()

            def bucket(per_minute: float | None) -> Bucket | None:
                if per_minute is None or per_minute <= 0:
                    return None
                rate = per_minute * self.headroom / self.minute
                cap = max(rate * self.burst, 1.0)
                return Bucket(rate=rate, capacity=cap, level=cap, stamp=now)

            k = self._keys[key] = _Key(lim, bucket(lim.rpm), bucket(lim.tpm), factor_stamp=now,
                                       skew=self.skew)
        return k

    def _factor(self, k: _Key, now: float) -> float:
        if k.factor < 1.0 and now > k.factor_stamp:
            k.factor = min(1.0, k.factor + self.recovery * (now - k.factor_stamp) / self.minute)
        k.factor_stamp = max(k.factor_stamp, now)
        return k.factor

    # -- the arithmetic (synchronous, exact) -------------------------------------------------
    def reserve(self, key: str, tokens: int = 0) -> float:
        """Book one request of ``tokens`` on ``key``; returns how long the caller must wait
        before sending it (0 when it may go now)."""
        k = self._key(key)
        now = self.clock()
        factor = self._factor(k, now)
        wait = max(0.0, k.cooldown_until - now)
        if k.requests is not None:
            wait = max(wait, k.requests.take(1, now, factor))
        if k.tokens is not None and tokens > 0:
            wait = max(wait, k.tokens.take(tokens, now, factor))
        k.granted += 1
        k.waited += wait
        return wait

    def admit(self, key: str) -> float:
        """The last check, as one HTTP attempt is about to leave: if the key's requests per
        minute already left within the last ``minute + skew`` seconds, how long to wait;
        else 0, and the attempt is counted as sent. Also holds attempts through a
        cool-down."""
        k = self._key(key)
        now = self.clock()
        if k.cooldown_until > now:
            return k.cooldown_until - now
        if k.limits.rpm is None:
            return 0.0
        span = self.minute + k.skew
        while k.sent and k.sent[0] <= now - span:
            k.sent.popleft()
        allowed = max(1, int(k.limits.rpm * self._factor(k, now) + 1e-9))
        if len(k.sent) >= allowed:
            return k.sent[len(k.sent) - allowed] + span - now + 1e-6
        k.sent.append(now)
        return 0.0

    def settle(self, key: str, estimated: int, actual: int) -> None:
        """Correct a reservation once the answer's real token count is known."""
        k = self._key(key)
        if k.tokens is None or estimated == actual:
            return
        now = self.clock()
        k.tokens.refill(now, self._factor(k, now))
        k.tokens.level = min(k.tokens.capacity, k.tokens.level + (estimated - actual))

    def penalize(self, key: str, retry_after: float | None = None) -> float:
        """A 429 on ``key``: everyone on it waits out the cool-down and goes slower for a
        while. Returns the cool-down in seconds."""
        k = self._key(key)
        now = self.clock()
        pause = DEFAULT_COOLDOWN if retry_after is None or not math.isfinite(retry_after) \
            else min(max(retry_after, 0.0), MAX_COOLDOWN)
        fresh = now >= k.cooldown_until  # 429s answered together are one overload, one cut
        k.cooldown_until = max(k.cooldown_until, now + pause)
        self._factor(k, now)
        if fresh:
            k.factor = max(MIN_FACTOR, k.factor * SLOWDOWN)
            # a 429 despite the sliding minute: arrivals spread more than the skew allowed
            k.skew = min(MAX_SKEW, k.skew * SKEW_GROWTH)
        k.throttled += 1
        return pause

    def remaining_cooldown(self, key: str) -> float:
        k = self._keys.get(key)
        return 0.0 if k is None else max(0.0, k.cooldown_until - self.clock())

    # -- the async interface runs use ---------------------------------------------------------
    async def acquire(self, key: str, tokens: int = 0, *, admit: bool = True) -> float:
        """Wait until one request of ``tokens`` may go on ``key`` (its turn in the buckets,
        then, with ``admit``, :meth:`depart`); returns seconds waited. Callers whose HTTP
        attempts pass the client pool's request hook pass ``admit=False``: the hook admits
        each attempt."""
        waited = await wait_out(lambda: self.reserve(key, tokens), self.sleep, once=True)
        return waited + (await self.depart(key) if admit else 0.0)

    async def depart(self, key: str) -> float:
        """Wait until :meth:`admit` lets one attempt leave; returns seconds waited."""
        # admit() is asked again after each wait: a 429 elsewhere meanwhile, the sliding minute
        return await wait_out(lambda: self.admit(key), self.sleep)

    def stats(self) -> dict[str, dict[str, float]]:
        return {name: {"granted": k.granted, "throttled": k.throttled, "waited": k.waited,
                       "factor": k.factor, "skew": k.skew} for name, k in self._keys.items()}


def limits_for(model_name: str, rpm: float | None = None, tpm: float | None = None) -> Limits:
    """The limits of a model: command-line values, else its model-settings entry (the
    packaged table merged with the user's config)."""
    from papercoder.models.settings import settings_for

    s = settings_for(model_name)
    return Limits(rpm=rpm if rpm is not None else getattr(s, "rpm", None),
                  tpm=tpm if tpm is not None else getattr(s, "tpm", None))


# -- plugging it into the models -----------------------------------------------------------------
class SharedLimiter(Protocol):
    """What a rate-limited model needs: a :class:`RateLimiter`, or a proxy to one in a Ray
    actor (:mod:`papercoder.batch.ray_backend`)."""

    def configure(self, key: str, limits: Limits) -> None: ...

    async def acquire(self, key: str, tokens: int = 0, *, admit: bool = True) -> float: ...

    async def depart(self, key: str) -> float: ...

    def settle(self, key: str, estimated: int, actual: int) -> None: ...

    def penalize(self, key: str, retry_after: float | None = None) -> float | None: ...


_CURRENT: ContextVar[tuple[SharedLimiter, str] | None] = ContextVar("papercoder_limiter",
                                                                   default=None)
"""The limiter and key of the call in progress (the hooks run in the caller's context)."""
EXPECTED_OUTPUT = 1000
"""Answer tokens booked in advance per request; :meth:`RateLimiter.settle` corrects it."""


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms``, in seconds."""
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    if "retry-after-ms" in lower:
        try:
            return float(lower["retry-after-ms"]) / 1000
        except ValueError:
            pass
    raw = lower.get("retry-after")
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


def _on_response(response: Any) -> None:
    """Pooled SDK clients report every response here; a 429 slows everyone on that key."""
    current = _CURRENT.get()
    if current is None or getattr(response, "status_code", None) != 429:
        return
    limiter, key = current
    limiter.penalize(key, retry_after_seconds(getattr(response, "headers", {}) or {}))


async def _on_request(request: Any) -> None:
    """Pooled SDK clients await this before every HTTP attempt: the sliding-minute check."""
    current = _CURRENT.get()
    if current is not None:
        limiter, key = current
        await limiter.depart(key)


def install_hook() -> None:
    from papercoder.models import clientpool

    if _on_response not in clientpool.RESPONSE_HOOKS:
        clientpool.RESPONSE_HOOKS.append(_on_response)
    if _on_request not in clientpool.REQUEST_HOOKS:
        clientpool.REQUEST_HOOKS.insert(0, _on_request)  # before any observer's hook


def limiter_key(model: Any) -> str:
    return f"{model.provider}|{getattr(model, 'endpoint', None) or 'default'}"


class RateLimitedModel:
    """A :class:`~papercoder.models.base.Model` that waits for the shared limiter before each
    call; everything else (name, endpoint, settings) is the wrapped model's."""

    def __init__(self, inner: Any, limiter: SharedLimiter, limits: Limits | None = None) -> None:
        self.inner = inner
        self.limiter = limiter
        self.name = inner.name
        self.provider = inner.provider
        self.key = limiter_key(inner)
        limiter.configure(self.key, limits if limits is not None else limits_for(inner.name))
        install_hook()
        from papercoder.models.clientpool import observed

        self.hooked = observed(getattr(inner, "_clients", None))
        """Whether the inner model's HTTP attempts pass the request hook (which admits each
        one); otherwise the call is admitted once, before it starts."""

    def __getattr__(self, item: str) -> Any:
        return getattr(self.inner, item)

    async def complete(self, messages: Sequence[Message], *, schema: Schema | None = None,
                       temperature: float | None = None, max_tokens: int | None = None,
                       meta: Mapping[str, str] | None = None) -> Completion:
        # a quick count (characters / 4): settle() corrects it from the answer's usage
        estimate = sum(len(m["content"]) for m in messages) // 4 + \
            min(max_tokens or EXPECTED_OUTPUT, EXPECTED_OUTPUT)
        await self.limiter.acquire(self.key, estimate, admit=not self.hooked)
        token = _CURRENT.set((self.limiter, self.key) if self.hooked else None)
        try:
            c = await self.inner.complete(messages, schema=schema, temperature=temperature,
                                          max_tokens=max_tokens, meta=meta)
        finally:
            _CURRENT.reset(token)
        self.limiter.settle(self.key, estimate, c.usage.prompt_tokens + c.usage.completion_tokens)
        return c
