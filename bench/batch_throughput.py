"""Batch throughput under a provider's rate limit.

20 papers (copies of the Transformer paper, each in its own folder with its own store, so
nothing is shared through the cache) are run by `papercoder batch`'s library entry point
against a loopback OpenAI-compatible server (tests/fakes/replay.py, a separate process) that
replays the recorded Claude run with latency and enforces a sliding-window request limit:
above it, 429 with Retry-After. The batch's shared limiter is given the same limit.

Printed: the achieved request rate as a fraction of the limit, measured at the server
(answered requests by arrival time) over the whole run (first to last request: this includes
the start and the tail, where the papers' own dependency order asks for fewer requests than
the limit allows) and over the windows throughout which requests were waiting in the limiter
(the limiter is then the only thing holding the rate; aligned windows and windows sliding
every 0.5 s); how late requests reached the server after the limiter let them go (the client
stamps each attempt after the limiter's hook, the server logs the stamp; both use the same
monotonic clock); the event loop's stalls; the 429s received (and how many after the first
window); and the total wall time.

Time is compressed by --scale (default 3): the server's window is 60/scale seconds (20 s:
"per minute" becomes "per 20 s"), answers take (1 s + tokens / 60 tok/s) / scale, and the
limiter's minute is compressed alike. A "minute" below is one window. Delays between the
limiter and the server do not compress, so the limiter's margin for them (``skew``, 1 s of
real time) costs 1/(window + 1) of the rate: 9 % at 6x (a 10 s window), 5 % at 3x, 1.6 % at
real time. At 6x the rate target cannot be met with that margin; hence 3x.

Usage: python bench/batch_throughput.py [--papers 20] [--rpm 60] [--scale 3] [--skew S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from papercoder.batch import BatchOptions, RateLimiter, discover, run_batch  # noqa: E402
from papercoder.batch.limiter import install_hook  # noqa: E402
from papercoder.models import clientpool  # noqa: E402
from tests.fakes.replay import start_process  # noqa: E402

SHARED = Path(os.environ.get("PAPERCODER_SHARED") or ROOT.parent / "shared")
DEFAULT_REC = SHARED / "recordings" / "transformer-claude-3-7-sonnet"
PAPER = SHARED / "papers" / "transformer" / "paper.tex"


class Recording(RateLimiter):
    """The batch's limiter, noting when requests waited in it (for their turn in the
    buckets, or at the sliding-minute check as the HTTP attempt left)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.queued: list[tuple[float, float]] = []

    def reserve(self, key: str, tokens: int = 0) -> float:
        wait = super().reserve(key, tokens)
        now = self.clock()
        self.queued.append((now, now + wait))
        return wait

    async def depart(self, key: str) -> float:
        start = self.clock()
        waited = await super().depart(key)
        if waited > 0:
            self.queued.append((start, self.clock()))
        return waited


async def stamp(request: Any) -> None:
    """After the limiter's hook let an attempt go: when, for the server's log."""
    request.headers["x-bench-admitted"] = repr(time.monotonic())


class LoopLag:
    """How late the event loop wakes a task that sleeps 50 ms: its stalls."""

    def __init__(self) -> None:
        self.lags: list[tuple[float, float]] = []

    async def watch(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.05)
            lag = time.monotonic() - t - 0.05
            if lag > 0.1:
                self.lags.append((t, lag))


async def watched(coro: Any, lag: LoopLag) -> Any:
    task = asyncio.ensure_future(lag.watch())
    try:
        return await coro
    finally:
        task.cancel()


def saturated(queued: list[tuple[float, float]], t: float, window: float) -> bool:
    """Whether some request was waiting in the limiter throughout [t, t + window)."""
    steps = int(window / 0.1)
    return all(any(a <= t + i * 0.1 < b for a, b in queued) for i in range(steps))


def union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def frange(a: float, b: float, step: float) -> list[float]:
    return [a + i * step for i in range(int((b - a) / step) + 1)] if b >= a else []


def most_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    j, best = 0, 0
    for i, t in enumerate(times):  # windows (t - window, t]
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--papers", type=int, default=20)
    ap.add_argument("--rpm", type=int, default=60, help="the limit, requests per (real) "
                    "minute")
    ap.add_argument("--scale", type=float, default=3.0)
    ap.add_argument("--skew", type=float, default=None, help="the limiter's skew (real s; "
                    "default: its own default)")
    ap.add_argument("--recording", type=Path, default=DEFAULT_REC)
    args = ap.parse_args()
    if not args.recording.is_dir() or not PAPER.is_file():
        print(f"skipped: {args.recording} or {PAPER} is absent")
        return 0
    window = 60.0 / args.scale
    limit = args.rpm  # per window
    ttft, rate = 1.0 / args.scale, 60.0 * args.scale
    os.environ.pop("OPENAI_API_KEY", None)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        papers = tmp / "papers"
        for i in range(args.papers):
            (papers / f"p{i:02d}").mkdir(parents=True)
            shutil.copy(PAPER, papers / f"p{i:02d}" / "paper.tex")
        log = tmp / "requests.jsonl"
        proc, url = start_process(args.recording, tmp, "--ttft", str(ttft), "--rate",
                                  str(rate), "--limit", str(limit), "--window", str(window),
                                  "--log", str(log))
        kw = {} if args.skew is None else {"skew": args.skew}
        limiter = Recording(minute=window, **kw)  # the limiter's minute is compressed alike
        install_hook()
        clientpool.REQUEST_HOOKS.append(stamp)  # after the limiter's
        opts = BatchOptions(model="openai/claude-3-7-sonnet", out=tmp / "out",
                            workers=args.papers, base_url=url, rpm=limit,
                            quiet=True)
        lag = LoopLag()
        t0 = time.perf_counter()
        try:
            rows = asyncio.run(watched(run_batch(discover(papers), opts, limiter=limiter),
                                       lag))
        finally:
            wall = time.perf_counter() - t0
            proc.terminate()
            proc.wait(timeout=30)
        reqs = [json.loads(line) for line in log.read_text().splitlines()]
    ok = sorted(r["arrived"] for r in reqs if r["status"] != 429)
    throttled = sorted(r["arrived"] for r in reqs if r["status"] == 429)
    start, end = ok[0], ok[-1]
    per_s = limit / window
    overall = len(ok) / max(end - start, 1e-9) / per_s
    counts = []  # full windows from the first request
    t = start
    while t + window <= end:
        counts.append(sum(1 for x in ok if t <= x < t + window))
        t += window
    busy = []
    t = start
    while t + window <= end:
        if saturated(limiter.queued, t, window):
            busy.append(sum(1 for x in ok if t <= x < t + window))
        t += window
    spans = union(limiter.queued)
    queued_s = sum(b - a for a, b in spans)
    late = [x for x in throttled if x >= start + window]
    delays = sorted(r["arrived"] - r["admitted"] for r in reqs if r.get("admitted") is not None)
    done = sum(1 for r in rows if r["status"] == "done")

    def ms(x: float) -> str:
        return f"{x * 1000:.0f}"

    def row(label: str, value: str) -> None:
        print(f"{label:<58} {value}")

    print(f"{args.papers} replayed papers, {len(ok)} answered requests; limit {limit} per "
          f"{window:g} s window (= {args.rpm} per minute, time compressed {args.scale:g}x); "
          f"limiter skew {limiter.skew:g} s\n")
    row("papers done", f"{done}/{len(rows)}")
    row("requests per window, full windows", str(counts))
    row("achieved rate / limit, whole run (first to last request)", f"{overall:.3f}")
    if busy:
        row("achieved rate / limit, full windows with requests queued",
            f"{sum(busy) / len(busy) / limit:.3f}   (target >= 0.90; {len(busy)} windows)")
    else:
        row("achieved rate / limit, full windows with requests queued",
            "none: demand stayed under the limit")
    sliding = [sum(1 for x in ok if t <= x < t + window)
               for a, b in spans for t in frange(a, b - window, 0.5)]
    if sliding:
        row("achieved rate / limit, sliding windows with requests queued",
            f"{sum(sliding) / len(sliding) / limit:.3f}   ({len(sliding)} windows, every 0.5 s; "
            f"{queued_s:.0f} of {end - start:.0f} s had requests queued)")
    if delays:
        row("admission -> arrival delay ms: min / median / p99 / max",
            f"{ms(delays[0])} / {ms(delays[len(delays) // 2])} / "
            f"{ms(delays[int(len(delays) * 0.99)])} / {ms(delays[-1])}")
        admitted = [r["admitted"] for r in reqs if r.get("admitted") is not None]
        row(f"most admitted in any {window:g} s (limiter) / arrived (server)",
            f"{most_in_window(admitted, window)} / "
            f"{most_in_window([r['arrived'] for r in reqs], window)}")
        slow = [x for x in delays if x > 0.5]
        row("admissions arriving over 0.5 s late", f"{len(slow)}")
    stalls = sorted(x for _, x in lag.lags)
    row("event-loop stalls over 0.1 s: count, total, longest",
        f"{len(stalls)}, {sum(stalls):.1f} s, {stalls[-1] if stalls else 0:.2f} s")
    row("429s received", f"{len(throttled)}" + (
        f"   at {', '.join(f'{x - start:.1f}' for x in throttled)} s" if throttled else ""))
    statuses: dict[int, int] = {}
    for r in reqs:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    row("answers by HTTP status", str(statuses))
    st = next(iter(limiter.stats().values()), {})
    row("limiter: calls booked, 429s seen, factor, skew at the end",
        f"{st.get('granted', 0):.0f}, {st.get('throttled', 0):.0f}, "
        f"{st.get('factor', 1):.2f}, {st.get('skew', 0):.2f} s")
    row("429s after the first window (minute)", f"{len(late)}   (target 0)")
    row("total wall time", f"{wall:.1f} s (compressed; {wall * args.scale:.0f} s real)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
