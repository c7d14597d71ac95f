"""Bounded provider calls: one deadline per attempt, capped waits, honest attempt counts.

The SDKs' own timeouts bound each read, so a body that trickles in one byte at a time never
times out there; their retry loops honour any ``Retry-After``, however long. The hosted
backends therefore turn the SDK's retries off and call :func:`with_retries`, which

* bounds every attempt as a whole (connection, headers and body) by ``timeout`` seconds;
* retries rate limits (429 without a quota message), 408/409, 5xx, timeouts and dropped
  connections up to ``max_retries`` times, waiting ``Retry-After`` (or exponential backoff
  with jitter when the server says nothing), never longer than ``max_wait`` seconds;
* refuses to wait when the server asks for more than ``max_wait`` seconds, with a sentence
  that says how long it asked for;
* counts the attempts it really made, for the error message.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from papercoder.errors import ModelError, RetriesExhaustedError
from papercoder.models.failures import Failure

T = TypeVar("T")

DEFAULT_MAX_RETRY_WAIT = 30.0
"""Longest wait between two attempts (seconds), whatever ``Retry-After`` says."""


def default_max_wait() -> float:
    """The retry-wait cap: ``$PAPERCODER_MAX_RETRY_WAIT`` seconds when set, else 30."""
    raw = os.environ.get("PAPERCODER_MAX_RETRY_WAIT", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_MAX_RETRY_WAIT
    except ValueError:
        return DEFAULT_MAX_RETRY_WAIT
    return value if value >= 0 else DEFAULT_MAX_RETRY_WAIT


RETRYABLE = {"rate", "server", "timeout", "connection"}
BASE_BACKOFF = 0.5


@dataclass
class Attempted:
    """A failure after ``attempts`` attempts, to be turned into the user's sentence."""

    failure: Failure
    attempts: int
    asked_wait: float | None = None
    """Seconds the server asked to wait (Retry-After) when that was above the cap."""


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if not headers:
        return None
    low = {str(k).lower(): str(v) for k, v in headers.items()}
    try:
        if "retry-after-ms" in low:
            return max(float(low["retry-after-ms"]) / 1000.0, 0.0)
    except ValueError:
        pass
    value = low.get("retry-after")
    if value is None:
        return None
    try:
        secs = float(value)
        return secs if secs == secs and secs >= 0 else None  # NaN or negative: ignored
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - time.time(), 0.0)


def backoff(attempt: int, asked: float | None, cap: float) -> float:
    if asked is not None:
        return min(asked, cap)
    return min(cap, BASE_BACKOFF * 2 ** (attempt - 1) * (1 + 0.25 * random.random()))


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    classify: Callable[[BaseException], tuple[Failure, float | None] | None],
    fail: Callable[[Attempted], ModelError],
    *,
    max_retries: int,
    timeout: float,
    max_wait: float = DEFAULT_MAX_RETRY_WAIT,
) -> T:
    """``await attempt()`` with retries. ``classify`` maps an exception to (failure,
    Retry-After seconds), or None to let it through unchanged; ``fail`` builds the error."""
    n = 0
    while True:
        n += 1
        try:
            return await asyncio.wait_for(attempt(), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            failure, asked = Failure("timeout"), None
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - classified below
            got = classify(e)
            if got is None:
                raise
            failure, asked = got
        if failure.kind not in RETRYABLE or n > max_retries:
            raise fail(Attempted(failure, n)) from None
        if asked is not None and asked > max_wait:
            raise fail(Attempted(failure, n, asked_wait=asked)) from None
        await asyncio.sleep(backoff(n, asked, max_wait))


def attempts_text(n: int) -> str:
    return "1 attempt" if n == 1 else f"{n} attempts"


def waited_too_long(where: str, status: int | None, asked: float, cap: float,
                    attempts: int) -> ModelError:
    what = f"HTTP {status}" if status else "an error"
    return RetriesExhaustedError(
        f"{where} answered {what} and asked to wait {asked:.0f} s before retrying, more than "
        f"the {cap:g} s retry-wait cap (after {attempts_text(attempts)}); wait and rerun, or "
        "raise --max-retry-wait.")
