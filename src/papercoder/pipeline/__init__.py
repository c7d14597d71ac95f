"""The paper-to-repository pipeline: planning, analysis, coding.

Library entry point: :func:`run_pipeline` (the CLI's ``run`` and ``plan`` call it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from papercoder.config import default_db_path
from papercoder.console import styled
from papercoder.errors import ConfigError, Interrupted
from papercoder.models import Model, default_model_name, get_model
from papercoder.outdir.lock import out_lock
from papercoder.outdir.record import Manifest
from papercoder.outdir.workspace import Workspace
from papercoder.paper import Paper, load_paper, load_paper_and_pdf
from papercoder.pipeline.options import RunOptions
from papercoder.pipeline.progress import Progress
from papercoder.pipeline.runner import Pipeline
from papercoder.store import Store

__all__ = ["RunOptions", "run_pipeline", "run_pipeline_async"]


_LOG_OWNER: ContextVar[object] = ContextVar("papercoder_log_owner", default=None)
"""Which run's log file a record goes to when several runs share a process (batch)."""


class _LogHandler(logging.StreamHandler):
    """Appends to OUT/papercoder.log, opened through the safe-path API (never via a link)."""

    def close(self) -> None:
        self.acquire()
        try:
            if self.stream is not None and not self.stream.closed:
                self.stream.close()
        finally:
            self.release()
        super().close()


def _file_log(ws: Workspace) -> logging.Handler:
    handler = _LogHandler(ws.open_log())
    owner = _LOG_OWNER.get()
    handler.addFilter(lambda record: _LOG_OWNER.get() is owner)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("papercoder")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler


async def run_pipeline_async(opts: RunOptions, *, model: Model | None = None,
                             store: Store | None = None, paper: Paper | None = None,
                             progress: Progress | None = None,
                             reader: Model | None = None, pdf: object = None) -> Manifest:
    """One run. ``paper`` may be given already read, with its ``pdf``
    (:func:`papercoder.paper.load_paper_and_pdf`) for ``--pdf-reader model``; sections added
    to it after reading (an addendum) are kept after the pages are transcribed. ``reader`` is
    the model that transcribes pages (default: ``opts.reader_model``, else ``model``)."""
    started = time.perf_counter()  # the final line's time is wall time, reading included
    ws = Workspace(opts.out)
    if paper is None and opts.pdf_reader == "default":
        paper = load_paper(opts.paper, prefer_source=opts.prefer_source)
    elif paper is None:  # the laid-out PDF is kept for the model reader
        paper, pdf = load_paper_and_pdf(opts.paper, prefer_source=opts.prefer_source)
    model = model or get_model(opts.model or default_model_name()[0], base_url=opts.base_url,
                               timeout=opts.timeout, max_retries=opts.max_retries,
                               max_wait=opts.max_retry_wait)
    if opts.pdf_reader != "default" and pdf is not None:
        from papercoder.ingest import require_images

        if reader is None and opts.reader_model:
            reader = get_model(opts.reader_model, base_url=opts.base_url,
                               timeout=opts.timeout, max_retries=opts.max_retries,
                               max_wait=opts.max_retry_wait)
        require_images(reader or model)  # before any call, before OUT is touched
    store = store or Store(default_db_path())
    ws.ensure()
    with out_lock(ws.out) as stale:
        return await _run_locked(opts, model, store, paper, ws, progress, stale, started,
                                 pdf=pdf, reader=reader)


async def _run_locked(opts: RunOptions, model: Model, store: Store, paper: Paper,
                      ws: Workspace, progress: Progress | None, stale: dict | None,
                      started: float, *, pdf: object = None,
                      reader: Model | None = None) -> Manifest:
    previous = ws.load_manifest()
    if previous is not None and previous.paper.get("title") not in (None, paper.title):
        raise ConfigError(
            f"{ws.out} already holds a run for another paper ({previous.paper.get('title')!r}); "
            "choose another output folder with -o."
        )
    settings = opts.model_dump(mode="json", exclude={"paper", "out", "quiet", "grace"})
    run_id = store.create_run(
        opts.stop_after == "coding" and "run" or "plan", paper=str(opts.paper), model=model.name,
        out_dir=str(ws.out.resolve()), settings=settings,
        run_id=previous.run_id or None if previous else None)
    if previous is not None and opts.from_stage is None:
        others = sorted(authors(previous) - {model.name})
        if others:
            # Never reuse (or relabel) another model's work silently: --from says what to redo.
            raise ConfigError(
                f"{ws.out} holds work by {', '.join(others)}; to redo it with {model.name} add "
                "--from planning (or --from analysis / --from coding to keep the earlier "
                "stages), or choose another output folder with -o."
            )
    manifest = previous or Manifest(run_id=run_id)
    manifest.run_id = run_id
    manifest.warnings.extend(n for n in ws.record_notes if n not in manifest.warnings)
    manifest.model = model.name
    manifest.settings = settings
    manifest.status = "running"
    manifest.error = None
    manifest.finished = None
    manifest.paper = {"source": str(opts.paper), "title": paper.title,
                      "format": paper.source_format, "read_from": paper.read_from,
                      "tokens": paper.estimate_tokens(),
                      "warnings": list(paper.warnings)}
    owner = _LOG_OWNER.set(object())
    handler = _file_log(ws)
    logging.getLogger("papercoder").info("run %s: %s with %s", run_id, opts.paper, model.name)
    if stale:
        logging.getLogger("papercoder").info(
            "took over the lock of %s left by a process that is gone: %s", ws.out, stale)
    try:
        with (progress or Progress(opts.quiet)) as prog:
            pipe = Pipeline(opts, model, store, paper, ws, manifest, prog)
            pipe.t0 = started
            pipe.pdf, pipe.reader = pdf, reader
            stopper = _GracefulStop(pipe, opts.grace)
            with stopper.installed():
                try:
                    return await pipe.run()
                except asyncio.CancelledError:
                    if stopper.cancelled:  # a second Ctrl-C, or the grace period ran out
                        raise Interrupted() from None
                    raise
    finally:
        logging.getLogger("papercoder").removeHandler(handler)
        handler.close()
        _LOG_OWNER.reset(owner)


class _GracefulStop:
    """Ctrl-C during a run: the first stops new model calls and lets those in flight finish
    and be stored (for at most ``grace`` seconds); the second, or the end of the grace
    period, cancels what is left. Either way run.json says ``interrupted``."""

    def __init__(self, pipe: Pipeline, grace: float) -> None:
        self.pipe = pipe
        self.grace = grace
        self.count = 0
        self.cancelled = False
        self._task: asyncio.Task | None = None
        self._timer: asyncio.TimerHandle | None = None

    def on_sigint(self) -> None:
        self.count += 1
        if self.count > 1:
            self._cancel()
            return
        caller = self.pipe.caller
        caller.stop()
        if self.pipe.reader_caller is not None:  # --reader-model's page calls stop too
            self.pipe.reader_caller.stop()
        n = caller.in_flight
        self.pipe.progress.say(styled(
            ("Stopping:", "bold yellow"),
            f" no new model calls; waiting up to {self.grace:g} s for the {n} call"
            f"{'' if n == 1 else 's'} in flight to finish and be stored "
            "(Ctrl-C again to stop now)."))
        self._timer = asyncio.get_running_loop().call_later(self.grace, self._cancel)

    def _cancel(self) -> None:
        self.cancelled = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGINT while the block runs. Several runs in one event loop (a batch)
        share one handler: Ctrl-C reaches every one of them."""
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        active = _ACTIVE.setdefault(loop, [])
        if not active:
            try:
                previous = signal.getsignal(signal.SIGINT)
                loop.add_signal_handler(signal.SIGINT, _on_sigint, loop)
            except (ValueError, RuntimeError, NotImplementedError, AttributeError):
                del _ACTIVE[loop]
                yield  # not the main thread, or no signals here: Ctrl-C behaves as Python's
                return
            _PREVIOUS[loop] = previous
        active.append(self)
        try:
            yield
        finally:
            if self._timer is not None:
                self._timer.cancel()
            active.remove(self)
            if not active:
                del _ACTIVE[loop]
                loop.remove_signal_handler(signal.SIGINT)
                with contextlib.suppress(ValueError, TypeError):
                    signal.signal(signal.SIGINT, _PREVIOUS.pop(loop))


_ACTIVE: dict[asyncio.AbstractEventLoop, list[_GracefulStop]] = {}
"""The runs handling Ctrl-C, per event loop."""
_PREVIOUS: dict[asyncio.AbstractEventLoop, Any] = {}


def _on_sigint(loop: asyncio.AbstractEventLoop) -> None:
    for stop in list(_ACTIVE.get(loop, ())):
        stop.on_sigint()


def authors(m: Manifest) -> set[str]:
    """The models that wrote the work recorded in ``m`` (older manifests: its one model)."""
    names = {m.models[k] for k in m.steps if k in m.models}
    names |= {s.model for s in m.files.values() if s.status == "written" and s.model}
    unrecorded = [k for k in m.steps if k not in m.models] + [
        f for f, s in m.files.items() if s.status == "written" and not s.model]
    if unrecorded and m.model:
        names.add(m.model)
    return names


def run_pipeline(opts: RunOptions, **kw: object) -> Manifest:
    """Run the pipeline to the end. Ctrl-C ends it with KeyboardInterrupt after the calls in
    flight were stored (see RunOptions.grace); run.json then says ``interrupted``."""
    try:
        return asyncio.run(run_pipeline_async(opts, **kw))  # type: ignore[arg-type]
    except Interrupted:
        raise KeyboardInterrupt from None
