"""Run many papers: each in its own output folder with its own store, all sharing one rate
limiter and one progress display; one paper's failure never stops the others.

Library entry points: :func:`run_batch` (async) and :func:`run_paper` (one paper, used by the
local runner and by Ray tasks alike).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text

from papercoder.batch import stages
from papercoder.batch.inputs import PaperItem
from papercoder.batch.limiter import Limits, RateLimitedModel, RateLimiter, SharedLimiter
from papercoder.batch.summary import collect, plain, write_summary
from papercoder.errors import BudgetExceeded, PapercoderError
from papercoder.pipeline.progress import Progress

log = logging.getLogger("papercoder")

STORE_NAME = "papercoder.db"
"""Each paper's store (log and response cache) lives inside its output folder."""

Emit = Callable[[str, dict[str, Any]], None]
"""Progress events: ``emit(slug, {"stage": ..., "done": ..., "total": ..., ...})``."""


@dataclass
class BatchOptions:
    model: str
    out: Path
    workers: int = 2
    """Papers in progress at once."""
    concurrency: int = 8
    """Calls in flight at once within one paper (the limiter still holds the batch's rate)."""
    base_url: str | None = None
    timeout: float = 600.0
    max_cost: float | None = None
    """Budget per paper (USD)."""
    rpm: float | None = None
    tpm: float | None = None
    execute: bool = False
    """Verify each repository (static checks, smoke run, debug loop)."""
    eval_mode: str | None = None
    """Grade each repository: reference-free, reference-based or rubric."""
    judge: str | None = None
    judge_base_url: str | None = None
    gpus_per_verify: float = 0.0
    verify_options: dict[str, Any] = field(default_factory=dict)
    eval_options: dict[str, Any] = field(default_factory=dict)
    quiet: bool = False
    context: str = "scoped"
    pdf_reader: str = "default"
    """--pdf-reader: default, model or model-all (a vision model transcribes PDF pages)."""
    reader_model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        return d


class PaperProgress(Progress):
    """The pipeline's progress hooks, forwarded as events to the batch display."""

    def __init__(self, slug: str, emit: Emit) -> None:
        super().__init__(quiet=True)
        self.slug = slug
        self.emit = emit
        self._total = 0
        self._done = 0
        self.messages: list[str] = []

    def __enter__(self) -> PaperProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def say(self, message: str | Text) -> None:
        self.messages.append(str(message))  # warnings are in run.json; the board stays one line

    def stage(self, name: str, total: int | None, done: int = 0) -> None:
        self._total, self._done = total or 0, done
        self.emit(self.slug, {"stage": name, "total": total, "done": done, "current": ""})

    def working(self, item: str) -> None:
        self.emit(self.slug, {"current": item})

    def advance(self, item: str) -> None:
        self._done += 1
        self.emit(self.slug, {"done": self._done, "current": item})

    def update_totals(self, totals: Any) -> None:
        cost = f"${totals.cost:.4f}" + ("+?" if totals.unpriced_calls else "")
        self.emit(self.slug, {"cost": cost, "calls": totals.calls,
                              "cache_hits": totals.cache_hits})


def _with_addendum(paper: Any, addendum: Path | None) -> Any:
    if addendum is None:
        return paper
    from papercoder.paper import Section

    try:
        text = addendum.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return paper
    if text.strip():
        paper.sections.append(Section("Addendum (the authors' clarifications)", text.strip()))
    return paper


_SHARED_MODELS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, Any]] = \
    weakref.WeakKeyDictionary()
"""Per event loop, one provider model per (name, endpoint, timeout), shared by the papers:
their calls then share one SDK client and its connections. A model per paper would close its
client whenever that paper has no call in flight (between planning steps) and build a new one
for the next call, and building one (TLS set-up included) stalls the loop every paper's
requests wait on."""


async def _model(name: str, base_url: str | None, timeout: float, limiter: SharedLimiter,
                 limits: Limits | None) -> Any:
    from papercoder.models import get_model

    shared = _SHARED_MODELS.setdefault(asyncio.get_running_loop(), {})
    inner = shared.get((name, base_url, timeout))
    if inner is None:  # the first one imports the SDK: in a thread, off the loop
        inner = await asyncio.to_thread(get_model, name, base_url=base_url, timeout=timeout)
        inner = shared.setdefault((name, base_url, timeout), inner)
    return RateLimitedModel(inner, limiter, limits)


def _limits(opts: BatchOptions) -> Limits | None:
    return Limits(opts.rpm, opts.tpm) if opts.rpm is not None or opts.tpm is not None else None


async def run_paper(item: PaperItem, opts: BatchOptions, limiter: SharedLimiter, emit: Emit,
                    *, out: Path | None = None) -> dict[str, Any]:
    """Generate (then verify and grade, when asked) one paper into ``out`` (default
    ``OUTDIR/<slug>``). Never raises for a paper's own failure: the result says it."""
    from papercoder.paper import load_paper_and_pdf
    from papercoder.pipeline import RunOptions, run_pipeline_async
    from papercoder.store import Store

    out = out or opts.out / item.slug
    started = time.perf_counter()
    result: dict[str, Any] = {"slug": item.slug, "status": "running", "error": None}
    store = None
    emit(item.slug, {"stage": "reading", "status": "running"})
    try:
        out.mkdir(parents=True, exist_ok=True)
        store = Store(out / STORE_NAME)
        model = await _model(opts.model, opts.base_url, opts.timeout, limiter, _limits(opts))
        # parsing is CPU work: in a thread, so the other papers' requests leave on time
        paper, pdf = await asyncio.to_thread(load_paper_and_pdf, item.source)
        paper = _with_addendum(paper, item.addendum)
        run_opts = RunOptions(paper=item.source, out=out, model=opts.model,
                              base_url=opts.base_url, concurrency=opts.concurrency,
                              max_cost=opts.max_cost, quiet=True, timeout=opts.timeout,
                              context=opts.context, pdf_reader=opts.pdf_reader,
                              reader_model=opts.reader_model)
        reader = None if not opts.reader_model or opts.pdf_reader == "default" or pdf is None \
            else await _model(opts.reader_model, opts.base_url, opts.timeout, limiter,
                              _limits(opts))
        manifest = await run_pipeline_async(run_opts, model=model, store=store, paper=paper,
                                            progress=PaperProgress(item.slug, emit), pdf=pdf,
                                            reader=reader)
        result["status"] = manifest.status
        result["error"] = manifest.error
        # static checks and their repair always run, as after `papercoder run`; the smoke
        # run and debug loop only with --execute
        emit(item.slug, {"stage": "verify", "current": ""})
        await stages.verify(out, model=model, store=store, execute=opts.execute,
                            **{"quiet": True, "same_session": True, **opts.verify_options})
        if opts.eval_mode:
            emit(item.slug, {"stage": f"eval {opts.eval_mode}", "current": ""})
            judge = await _model(opts.judge or opts.model, opts.judge_base_url or (
                None if opts.judge else opts.base_url), opts.timeout, limiter, None)
            await stages.evaluate(out, paper=paper, judge=judge, store=store,
                                  mode=opts.eval_mode, rubric=item.rubric,
                                  addendum=item.addendum, ref=item.reference,
                                  **opts.eval_options)
    except BudgetExceeded as e:
        result.update(status="stopped", error=str(e))
    except PapercoderError as e:
        result.update(status="failed", error=str(e))
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - one paper's bug must not stop the batch
        log.error("batch: %s failed unexpectedly:\n%s", item.slug, traceback.format_exc())
        result.update(status="error", error=f"unexpected {type(e).__name__}: "
                      f"{plain(str(e))[:200]}")
    finally:
        if store is not None:
            store.close()
        # rendering is CPU work: in a thread, so the other papers' requests leave on time
        await asyncio.to_thread(_report, out)
    result["seconds"] = round(time.perf_counter() - started, 2)
    emit(item.slug, {"stage": result["status"], "status": result["status"], "current": ""})
    return collect(item, out, result)


def _report(out: Path) -> None:
    """The paper's ``OUT/report.html``, as ``papercoder run`` writes it; never fails the paper."""
    manifest = out / "run.json"
    if manifest.is_symlink() or not manifest.is_file():
        return
    try:
        from papercoder.report import write_report

        write_report(out)
    except Exception as e:  # noqa: BLE001 - the report must never fail the paper
        log.warning("batch: the report of %s could not be written: %s", out, e)


async def run_local(items: list[PaperItem], opts: BatchOptions, emit: Emit,
                    limiter: RateLimiter | None = None,
                    on_result: Callable[[dict[str, Any]], None] | None = None) \
        -> list[dict[str, Any]]:
    """Every paper in this process, ``opts.workers`` at a time, one shared limiter."""
    limiter = limiter or RateLimiter()
    sem = asyncio.Semaphore(max(1, opts.workers))

    async def one(item: PaperItem) -> dict[str, Any]:
        async with sem:
            r = await run_paper(item, opts, limiter, emit)
        if on_result:
            await asyncio.to_thread(on_result, r)
        return r

    return list(await asyncio.gather(*(one(i) for i in items)))


async def run_batch(items: list[PaperItem], opts: BatchOptions, *, emit: Emit | None = None,
                    ray_address: str | None = None, use_ray: bool = False,
                    limiter: RateLimiter | None = None) -> list[dict[str, Any]]:
    """Run every paper and write ``OUTDIR/summary.json`` and ``summary.csv`` (after each paper
    finishes, so a killed batch leaves a summary of what is done)."""
    opts.out.mkdir(parents=True, exist_ok=True)
    emit = emit or (lambda slug, ev: None)
    done: dict[str, dict[str, Any]] = {}

    def on_result(r: dict[str, Any]) -> None:
        done[r["slug"]] = r
        write_summary(opts.out, [done.get(i.slug) or collect(i, opts.out / i.slug, None)
                                 for i in items], opts)

    if use_ray:
        from papercoder.batch.ray_backend import run_on_ray

        results = await run_on_ray(items, opts, emit, run_paper=run_paper, address=ray_address,
                                   on_result=on_result)
    else:
        results = await run_local(items, opts, emit, limiter, on_result=on_result)
    write_summary(opts.out, results, opts)
    return results
