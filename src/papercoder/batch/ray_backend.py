"""Papers as Ray tasks: `papercoder batch --ray [ADDRESS]` (extra: ``papercoder[ray]``).

* Each paper is one task requesting one CPU for generation, plus ``--gpus-per-verify`` GPUs
  when ``--execute`` runs the generated code.
* Output folders must be on storage every node sees (a shared file system): a task writes
  ``OUTDIR/<slug>/`` with that paper's store inside, and a rerun on any node resumes it.
* The rate limiter lives in one actor: every task books its requests there, so a hundred
  workers share one API key's limits; a 429 seen by any task slows all of them.
* Progress events go to a small actor the driver drains; each task's result row comes back
  as the task's return value.
* A worker that dies while running a paper (killed, out of memory, its node lost) does not
  stop the batch: Ray reruns that paper's task once (``CRASH_RETRIES``), resuming from the
  paper's folder, so nothing answered is paid twice; if that worker dies too, the paper is
  reported failed with the reason and the other papers go on. A paper's own errors are
  never retried (they are its result, not a crash).
* Provider keys and endpoints set on the driver (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``,
  ``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL``) are passed to the tasks' environment.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from pathlib import Path
from typing import Any

from papercoder.batch.inputs import PaperItem
from papercoder.batch.limiter import Limits, RateLimiter, wait_out
from papercoder.errors import ConfigError

CRASH_RETRIES = 1
"""Reruns of a paper's task after its worker died (Ray's ``max_retries``: system failures
only, a paper's own errors are returned as its result and never retried)."""
FORWARDED_ENV = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL",
                 "PAPERCODER_CONFIG")


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray, which is not installed; run `pip install "
                          "'papercoder[ray]'` (or drop --ray).") from None
    return ray


class LimiterActor:
    """A :class:`RateLimiter` in an actor: tasks ask it how long to wait, then sleep
    themselves, so the actor is never blocked."""

    def __init__(self) -> None:
        self.limiter = RateLimiter()

    def configure(self, key: str, rpm: float | None, tpm: float | None) -> None:
        self.limiter.configure(key, Limits(rpm, tpm))

    def reserve(self, key: str, tokens: int) -> float:
        return self.limiter.reserve(key, tokens)

    def admit(self, key: str) -> float:
        return self.limiter.admit(key)

    def settle(self, key: str, estimated: int, actual: int) -> None:
        self.limiter.settle(key, estimated, actual)

    def penalize(self, key: str, retry_after: float | None) -> float:
        return self.limiter.penalize(key, retry_after)

    def stats(self) -> dict[str, dict[str, float]]:
        return self.limiter.stats()


class RemoteLimiter:
    """The :class:`~papercoder.batch.limiter.SharedLimiter` interface over the actor."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def configure(self, key: str, limits: Limits) -> None:
        self.actor.configure.remote(key, limits.rpm, limits.tpm)  # calls keep their order

    async def acquire(self, key: str, tokens: int = 0, *, admit: bool = True) -> float:
        waited = await wait_out(lambda: self.actor.reserve.remote(key, tokens), asyncio.sleep,
                                once=True)
        return waited + (await self.depart(key) if admit else 0.0)

    async def depart(self, key: str) -> float:
        return await wait_out(lambda: self.actor.admit.remote(key), asyncio.sleep)

    def settle(self, key: str, estimated: int, actual: int) -> None:
        self.actor.settle.remote(key, estimated, actual)  # fire and forget

    def penalize(self, key: str, retry_after: float | None = None) -> None:
        self.actor.penalize.remote(key, retry_after)


class ProgressActor:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def push(self, slug: str, ev: dict[str, Any]) -> None:
        self.events.append((slug, ev))

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        out, self.events = self.events, []
        return out


def _paper_task(item: dict[str, Any], opts: dict[str, Any], limiter: Any,
                progress: Any, run_paper: Callable[..., Coroutine[Any, Any, dict[str, Any]]],
                options_type: Callable[..., Any]) -> dict[str, Any]:
    """Runs on a Ray worker: one paper, start to finish. ``run_paper`` and ``options_type``
    come from the caller (batch.runner), pickled by reference, so this module never imports
    the runner back."""
    pi = PaperItem(item["slug"], item["source"],
                   Path(item["rubric"]) if item.get("rubric") else None,
                   Path(item["addendum"]) if item.get("addendum") else None,
                   Path(item["reference"]) if item.get("reference") else None)
    bo = options_type(**{**opts, "out": Path(opts["out"])})

    def emit(slug: str, ev: dict[str, Any]) -> None:
        progress.push.remote(slug, ev)

    return asyncio.run(run_paper(pi, bo, RemoteLimiter(limiter), emit))


def task_failure(ray: Any, e: BaseException) -> tuple[str, str]:
    """(status, one sentence) for a paper whose task ended in ``e`` rather than a result."""
    name = type(e).__name__
    exc = getattr(ray, "exceptions", None)
    died = tuple(c for c in (getattr(exc, n, None) for n in (
        "WorkerCrashedError", "NodeDiedError", "OutOfMemoryError", "ActorDiedError",
        "LocalRayletDiedError")) if isinstance(c, type))
    if died and isinstance(e, died):
        tries = "its worker died" if CRASH_RETRIES == 0 else \
            f"its worker died, also on {CRASH_RETRIES} retr{'y' if CRASH_RETRIES == 1 else 'ies'}"
        return "failed", (f"the Ray task running this paper ended because {tries} ({name}: "
                          "killed, out of memory or its node lost); rerun the batch to resume "
                          "it from its folder.")
    return "error", f"the Ray task failed ({name})."


def connect(address: str | None) -> Any:
    """Connect to ``address`` (``auto``, ``ray://...``, ``HOST:PORT``); with none, to
    ``$RAY_ADDRESS`` or else a new local instance bound to 127.0.0.1."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    runtime_env = {"env_vars": env} if env else None
    address = address if address not in (None, "", "local") else os.environ.get("RAY_ADDRESS")
    try:
        if address:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False,
                     logging_level="ERROR")
        else:
            ray.init(include_dashboard=False, runtime_env=runtime_env, log_to_driver=False,
                     logging_level="ERROR", _node_ip_address="127.0.0.1")
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = address or "a new local instance"
        raise ConfigError(f"Could not connect to the Ray cluster at {where} "
                          f"({type(e).__name__}); check the address and that the cluster is "
                          "running.") from None
    return ray


async def run_on_ray(items: list[PaperItem], opts: Any, emit: Callable[[str, dict], None], *,
                     run_paper: Callable[..., Coroutine[Any, Any, dict[str, Any]]],
                     address: str | None = None,
                     on_result: Callable[[dict[str, Any]], None] | None = None) \
        -> list[dict[str, Any]]:
    from papercoder.batch.summary import collect

    ray = connect(address)
    limiter = ray.remote(num_cpus=0)(LimiterActor).remote()
    progress = ray.remote(num_cpus=0)(ProgressActor).remote()
    task = ray.remote(_paper_task).options(
        num_cpus=1, num_gpus=opts.gpus_per_verify if opts.execute else 0,
        max_retries=CRASH_RETRIES, retry_exceptions=False)
    opts_dict = {**asdict(opts), "out": str(Path(opts.out).resolve())}
    pending: dict[Any, PaperItem] = {}
    queue = list(items)
    results: dict[str, dict[str, Any]] = {}
    cap = max(1, opts.workers)

    def drain() -> None:
        for slug, ev in ray.get(progress.drain.remote()):
            emit(slug, ev)

    try:
        while queue or pending:
            while queue and len(pending) < cap:
                it = queue.pop(0)
                pending[task.remote(it.to_dict(), opts_dict, limiter, progress, run_paper,
                                     type(opts))] = it
            ready, _ = await asyncio.to_thread(ray.wait, list(pending), num_returns=1,
                                               timeout=0.3)
            drain()
            for ref in ready:
                it = pending.pop(ref)
                try:
                    row = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - a worker died or the task raised
                    status, why = task_failure(ray, e)
                    row = collect(it, Path(opts.out) / it.slug, {"status": status,
                                                                "error": why})
                    emit(it.slug, {"stage": status, "status": status})
                results[it.slug] = row
                if on_result:
                    on_result(row)
        drain()
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
    return [results[i.slug] for i in items]
