"""The shared rate limiter: exact arithmetic on an injected clock, concurrency, 429s."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from papercoder.batch.limiter import (
    DEFAULT_COOLDOWN,
    Limits,
    RateLimitedModel,
    RateLimiter,
    limits_for,
    retry_after_seconds,
)


class Clock:
    """Virtual time: ``sleep`` advances it, so waits are exact and instant."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        await asyncio.sleep(0)  # let other tasks book before time moves
        self.now += s


def limiter(clock: Clock, **kw: float) -> RateLimiter:
    return RateLimiter(clock=clock, sleep=clock.sleep, **kw)


def test_requests_leave_at_the_limit_pace_after_a_small_burst() -> None:
    clock = Clock()
    lim = limiter(clock, headroom=1.0, burst=2.0)
    lim.configure("k", Limits(rpm=60))  # one a second; burst of two
    waits = [lim.reserve("k") for _ in range(6)]
    assert waits == [0.0, 0.0, 1.0, 2.0, 3.0, 4.0]
    clock.now = 10.0  # idle: the bucket refills, but only up to the burst
    assert [lim.reserve("k") for _ in range(3)] == [0.0, 0.0, 1.0]


def test_any_window_holds_at_most_the_limit_under_concurrency() -> None:
    clock = Clock()
    lim = limiter(clock)  # defaults: 95 % headroom, 2 s burst
    lim.configure("k", Limits(rpm=120))
    sent: list[float] = []

    async def run_one() -> None:
        wait = lim.reserve("k")
        sent.append(clock.now + wait)

    async def main() -> None:
        await asyncio.gather(*(run_one() for _ in range(500)))

    asyncio.run(main())
    sent.sort()
    # every sliding minute: at most 120 (the bound is 120 * 0.95 * (1 + 2/60) = 117.8)
    for i, t in enumerate(sent):
        in_window = sum(1 for x in sent[i:] if x < t + 60)
        assert in_window <= 118
    # and the limiter does not waste the allowance: 500 requests in about 500 / 1.9 s
    assert sent[-1] == pytest.approx((500 - 3.8) / (120 * 0.95 / 60), rel=1e-6)


def test_tokens_per_minute_and_settling_the_estimate() -> None:
    clock = Clock()
    lim = limiter(clock, headroom=1.0, burst=1.0)
    lim.configure("k", Limits(tpm=6000))  # 100 tokens/s, bucket of 100
    assert lim.reserve("k", 100) == 0.0
    assert lim.reserve("k", 100) == pytest.approx(1.0)
    lim.settle("k", estimated=100, actual=20)  # the answer was short: 80 back
    assert lim.reserve("k", 100) == pytest.approx(1.2)
    # a request larger than the bucket waits for a full bucket, never forever
    assert lim.reserve("k", 10_000) == pytest.approx(2.2)


def test_a_429_slows_every_caller_on_the_key_then_recovers() -> None:
    clock = Clock()
    lim = limiter(clock, headroom=1.0, burst=1.0)
    lim.configure("k", Limits(rpm=60))
    lim.configure("other", Limits(rpm=60))
    assert lim.reserve("k") == 0.0
    assert lim.penalize("k", retry_after=7) == 7
    assert lim.reserve("k") == pytest.approx(7.0)  # another run, same key: waits it out
    assert lim.reserve("other") == 0.0  # another provider is not affected
    assert lim.penalize("k", None) == DEFAULT_COOLDOWN  # same overload: no second cut
    assert lim.stats()["k"]["throttled"] == 2
    assert lim.stats()["k"]["factor"] == pytest.approx(0.85)
    clock.now = 8.0  # after the cool-down, a new 429 is a new overload
    lim.penalize("k", 1)
    assert lim.stats()["k"]["factor"] == pytest.approx(0.85 * (0.85 + 0.3 * 8 / 60))
    clock.now = 600.0  # quiet minutes: back to the full rate
    lim.reserve("k")
    assert lim.stats()["k"]["factor"] == 1.0


def test_acquire_honours_a_cooldown_set_while_waiting() -> None:
    clock = Clock()
    lim = limiter(clock, headroom=1.0, burst=1.0)
    lim.configure("k", Limits(rpm=60))

    async def main() -> list[float]:
        lim.reserve("k")
        first = asyncio.ensure_future(lim.acquire("k"))  # must wait 1 s
        await asyncio.sleep(0)
        lim.penalize("k", retry_after=5)  # someone else got a 429 meanwhile
        assert await first == pytest.approx(5.0)
        return clock.sleeps

    assert asyncio.run(main()) == [1.0, pytest.approx(4.0)]


def test_late_releases_are_held_to_the_sliding_minute() -> None:
    """Requests booked in advance but released together (a stalled event loop) still leave
    no more than the limit in any minute."""
    clock = Clock()
    lim = limiter(clock, headroom=1.0, burst=1.0, skew=0.0)
    lim.configure("k", Limits(rpm=10))
    waits = [lim.reserve("k") for _ in range(12)]
    assert waits[-1] == pytest.approx(66.0)
    clock.now = 70.0  # the loop stalled: every booking is due at once
    assert [lim.admit("k") for _ in range(10)] == [0.0] * 10
    assert lim.admit("k") == pytest.approx(60.0, abs=1e-3)  # the 11th waits a minute
    clock.now = 130.0
    assert lim.admit("k") == 0.0


def test_the_sliding_minute_is_widened_by_the_skew_and_more_after_a_429() -> None:
    """Arrivals at the provider are the admissions shifted by delays that differ by up to
    ``skew``: the limit must hold in ``minute + skew`` of admissions. A 429 that gets through
    widens the skew by half, once per cool-down."""
    clock = Clock()
    lim = limiter(clock, headroom=1.0, burst=100.0, skew=0.5, minute=10.0, recovery=0.0)
    lim.configure("k", Limits(rpm=10))  # 10 per (compressed) 10 s minute
    assert [lim.admit("k") for _ in range(10)] == [0.0] * 10
    assert lim.admit("k") == pytest.approx(10.5, abs=1e-3)
    clock.now = 10.4
    assert lim.admit("k") == pytest.approx(0.1, abs=1e-3)
    clock.now = 10.5
    assert lim.admit("k") == 0.0
    lim.penalize("k", retry_after=1)
    lim.penalize("k", retry_after=1)  # answered together: one overload
    assert lim.stats()["k"]["skew"] == pytest.approx(0.75)
    assert lim.admit("k") == pytest.approx(1.0)  # the cool-down first
    clock.now = 20.5 + 0.75  # 10 s + the wider skew after the second admission
    # the factor (0.85, not recovering here) allows 8 in the window: 8 more leave
    assert sum(lim.admit("k") == 0.0 for _ in range(12)) == 8


def test_every_http_attempt_passes_the_limiter_retries_included() -> None:
    """The SDK call is admitted at the HTTP request, so a retry after a 429 (papercoder's own
    retry loop) is held to the sliding minute too, not sent behind the limiter's back."""
    from papercoder.models import get_model
    from tests.fakes.openai_server import FakeOpenAIServer

    clock = Clock()
    lim = limiter(clock, headroom=1.0, skew=1.0)
    with FakeOpenAIServer(lambda body: "fine") as srv:
        srv.enqueue({"status": 429, "headers": {"retry-after-ms": "20"},
                     "body": {"error": {"message": "Rate limit reached", "type": "requests"}}})
        m = RateLimitedModel(get_model("openai/gpt-4.1-mini", base_url=srv.url), lim,
                             Limits(rpm=1))
        assert m.hooked
        c = asyncio.run(m.complete([{"role": "user", "content": "hi"}]))
    assert c.text == "fine" and [r.status for r in srv.requests] == [429, 200]
    # the retry waited out the cool-down, then the minute (plus the skew, widened by the 429)
    # since the first attempt, on the limiter's clock
    assert clock.sleeps == [pytest.approx(0.02), pytest.approx(61.5 - 0.02, abs=1e-3)]
    assert lim.stats()[m.key]["granted"] == 1  # one call booked in the buckets


def test_unlimited_keys_never_wait() -> None:
    lim = limiter(Clock())
    assert all(lim.reserve("free", 10**9) == 0.0 for _ in range(1000))


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds({"Retry-After": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_limits_come_from_the_settings_table_and_the_user_config(tmp_path: Path,
                                                                  monkeypatch) -> None:
    assert limits_for("openai/gpt-4.1").empty  # nothing packaged: tiers differ
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model_settings:\n  openai:\n    gpt-4.1: {rpm: 500, tpm: 30000}\n")
    monkeypatch.setenv("PAPERCODER_CONFIG", str(cfg))
    assert limits_for("openai/gpt-4.1") == Limits(500, 30000)
    assert limits_for("openai/gpt-4.1", rpm=50) == Limits(50, 30000)


def test_a_429_seen_by_the_sdk_reaches_the_shared_limiter() -> None:
    """The SDK retries a 429 itself; the client pool's response hook still tells the
    limiter, so every run on that key pauses."""
    from papercoder.models import get_model
    from tests.fakes.openai_server import FakeOpenAIServer

    clock = Clock()
    lim = limiter(clock)
    with FakeOpenAIServer(lambda body: "fine") as srv:
        srv.enqueue({"status": 429, "headers": {"retry-after-ms": "20"},
                     "body": {"error": {"message": "Rate limit reached", "type": "requests"}}})
        a = RateLimitedModel(get_model("openai/gpt-4.1-mini", base_url=srv.url), lim)
        b = RateLimitedModel(get_model("openai/gpt-4.1-mini", base_url=srv.url), lim)
        assert a.key == b.key and a.name == "openai/gpt-4.1-mini" and a.endpoint == srv.url
        c = asyncio.run(a.complete([{"role": "user", "content": "hi"}]))
    assert c.text == "fine"
    assert [r.status for r in srv.requests] == [429, 200]
    assert lim.stats()[a.key]["throttled"] == 1
    # the cool-down is the key's, which b shares: the retry itself waited it out there
    assert clock.sleeps[0] == pytest.approx(0.02)
    clock.now = 0.0  # as when the 429 came back: b would wait out the same cool-down
    assert lim.remaining_cooldown(b.key) == pytest.approx(0.02)


def test_papers_on_one_event_loop_share_one_provider_model() -> None:
    """One SDK client for every paper on a loop (a client per paper was closed and rebuilt
    between its calls, stalling the loop); each paper still has its own limited wrapper."""
    from papercoder.batch.runner import _model
    from tests.fakes.openai_server import FakeOpenAIServer

    lim = limiter(Clock())
    with FakeOpenAIServer(lambda body: "fine") as srv:
        async def two() -> tuple[RateLimitedModel, RateLimitedModel, RateLimitedModel]:
            a = await _model("openai/gpt-4.1-mini", srv.url, 30.0, lim, None)
            b = await _model("openai/gpt-4.1-mini", srv.url, 30.0, lim, None)
            c = await _model("openai/gpt-4.1-mini", srv.url, 60.0, lim, None)
            await asyncio.gather(a.complete([{"role": "user", "content": "a"}]),
                                 b.complete([{"role": "user", "content": "b"}]))
            return a, b, c

        a, b, c = asyncio.run(two())
        other, _, _ = asyncio.run(two())  # another loop: its own
    assert a is not b and a.inner is b.inner and c.inner is not a.inner
    assert other.inner is not a.inner
