"""The pipeline: planning, then analysis, then coding, each writing its artifacts first."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from papercoder.console import styled
from papercoder.errors import BudgetExceeded, PapercoderError
from papercoder.llm import Caller, Totals
from papercoder.models.base import Completion, Message, Model
from papercoder.models.settings import settings_for
from papercoder.outdir.record import Manifest, StageRecord, figures
from papercoder.outdir.workspace import Workspace
from papercoder.paper import Paper
from papercoder.pipeline.context import Budget, clip, reduce_paper
from papercoder.pipeline.options import STAGE_NAMES, RunOptions
from papercoder.pipeline.progress import Progress
from papercoder.pipeline.schemas import Architecture, LogicDesign
from papercoder.prompts import render
from papercoder.store import Store
from papercoder.tokens import estimate_messages, estimate_tokens

log = logging.getLogger("papercoder")


class Pipeline:
    """State shared by the stage modules of one run."""

    def __init__(self, opts: RunOptions, model: Model, store: Store, paper: Paper,
                 ws: Workspace, manifest: Manifest, progress: Progress) -> None:
        self.opts = opts
        self.model = model
        self.store = store
        self.paper = paper
        self.ws = ws
        self.manifest = manifest
        self.progress = progress
        # what earlier sessions of this run spent: this session's figures are added to them
        self.earlier_totals = manifest.totals
        self.earlier_stages = {k: v.model_dump() for k, v in manifest.stages.items()}
        self.caller = Caller(model, store, manifest.run_id, use_cache=opts.use_cache,
                             max_cost=opts.max_cost, context_window=opts.context_window,
                             on_update=progress.update_totals)
        settings = settings_for(model.name)
        self.budget = Budget.for_window(self.caller.context_window, settings.max_output)
        self.paper_md = ""
        self.plan = ""
        self.architecture: Architecture | None = None
        self.logic: LogicDesign | None = None
        self.config_text = ""
        self.files: list[str] = []
        self.deps: dict[str, list[str]] = {}
        self.order: list[str] = []
        self.analyses: dict[str, str] = {}
        self._plan_context: str | None = None
        self.paper_reductions = ""
        self._said: set[str] = set()
        self._earlier = [] if opts.from_stage == "planning" else list(manifest.reductions)
        self.t0 = time.perf_counter()
        """When the run started (the final summary's time is wall time from here)."""
        self.pdf: Any = None
        """The laid-out PDF (papercoder.paper.pdf.PdfDocument) when the paper is a PDF read
        by the default reader: ``--pdf-reader model`` transcribes its pages."""
        self.reader: Model | None = None
        """The model that transcribes pages, when not the run's model (--reader-model)."""
        self.reader_caller: Caller | None = None
        self.contract: Any = None
        """The paper contract (papercoder.requirements.Contract), None without one."""
        self.file_requirements: dict[str, list[str]] = {}
        """Which requirement ids each file implements (from the logic design)."""

    # -- helpers used by stages ------------------------------------------------------------
    def render(self, name: str, **kw: Any) -> str:
        return render(name, self.opts.prompts_dir, **kw)

    def note(self, message: str) -> None:
        """A reduction the user must hear about (console, log, run.json). Said once per
        session, so a resumed run says again what the model sees."""
        if message not in self.manifest.reductions:
            self.manifest.reductions.append(message)
            if not any(r.get("message") == message for r in self.manifest.reduced):
                what = message.split(":", 1)[0] if ":" in message else "context"
                self.manifest.reduced.append({"what": what, "action": "cut", "sections": [],
                                              "message": message})
        if message not in self._said:
            self._said.add(message)
            self.progress.say(styled(("Context budget:", "yellow"), f" {message}."))
            log.info("reduction: %s", message)

    def recall_reductions(self) -> None:
        """On a resumed run, say the reductions an earlier session recorded (the answers
        kept from it were written from what those reductions left) unless said already."""
        for message in self._earlier:
            if message not in self._said:
                self._said.add(message)
                self.progress.say(styled(("Context budget:", "yellow"),
                                         f" {message} (earlier in this run)."))

    def warn(self, message: str) -> None:
        if message not in self.manifest.warnings:
            self.manifest.warnings.append(message)
            self.progress.say(styled(("Warning:", "yellow"), f" {message}"))
            log.warning(message)

    async def call(self, messages: list[Message], *, stage: str, file: str | None = None,
                   **kw: Any) -> Completion:
        kw.setdefault("max_tokens", self.budget.max_tokens_for(stage))
        kw.setdefault("continuations", 2)  # in a small window, as far as the room left allows
        if self.opts.layout == "plain":
            messages = plain_layout(messages)
        return await self.caller.call(messages, stage=stage, file=file, **kw)

    def prefix(self) -> list[Message]:
        """The stable start of every stage's prompt: instructions, then the paper."""
        paper = self.render("paper", paper=self.paper_md, reductions=self.paper_reductions)
        return [{"role": "system", "content": self.render("system")},
                {"role": "user", "content": paper, "cache": True}]

    def plan_prefix(self) -> list[Message]:
        """The prefix plus the planning artifacts, shared by every analysis and coding call."""
        if self._plan_context is None:
            notes: list[str] = []
            share = self.budget.plan // 4
            arch = self.architecture.model_dump() if self.architecture else {}
            logic = self.logic.model_dump() if self.logic else {}
            self._plan_context = self.render(
                "plan_context",
                plan=clip(self.plan, share, "overall plan", notes),
                architecture=clip(json.dumps(arch, indent=1), share, "architecture", notes),
                logic=clip(json.dumps(logic, indent=1), share, "logic design", notes),
                config=clip(self.config_text, share, "config.yaml", notes),
            )
            for n in notes:
                self.note(n)
        return self.prefix() + [{"role": "user", "content": self._plan_context, "cache": True}]

    def fit(self, text: str, label: str, used: list[Message], reserve_for: str = "") -> str:
        """``text`` clipped (with a marker, and said) to the room ``used`` leaves."""
        room = self.budget.input - estimate_messages(used) - estimate_tokens(reserve_for) - 50
        notes: list[str] = []
        out = clip(text, max(room, 100), label, notes)
        for n in notes:
            self.note(n)
        return out

    def done(self, step: str) -> None:
        """Record a planning step or analysis as done, and which model wrote it."""
        self.manifest.steps[step] = "done"
        self.manifest.models[step] = self.model.name

    def save(self) -> None:
        self.ws.save_manifest(self.manifest)

    # -- the run -------------------------------------------------------------------------
    async def read_pages(self) -> None:
        """``--pdf-reader model``: a vision model transcribes the chosen pages (stage
        ``ingest``, through a Caller: logged, cached by page image, within the budget)."""
        from papercoder.ingest import read_with_model

        m, mode = self.manifest, self.opts.pdf_reader
        if mode == "default":
            m.paper["reader"] = {"reader": "default"}
            return
        if self.pdf is None:
            what = ("its arXiv LaTeX source" if self.paper.read_from.startswith("arxiv-source")
                    else f"a {self.paper.source_format or 'non-PDF'} file")
            note = (f"--pdf-reader {mode} transcribes PDF pages, but the paper was read from "
                    f"{what}; no page was sent to the model.")
            m.paper["reader"] = {"reader": mode, "transcribed": [], "note": note}
            self.progress.say(styled(("Reader:", "cyan"), f" {note}"))
            return
        caller = self.caller
        if self.reader is not None and self.reader is not self.model:
            caller = self.reader_caller = Caller(
                self.reader, self.store, m.run_id, use_cache=self.opts.use_cache,
                max_cost=self.opts.max_cost, on_update=self.progress.update_totals)
        found = self.pdf.found
        self.progress.stage("ingest", len(found.maths_pages()) if mode == "model"
                            else self.pdf.pages)
        # Sections added to the paper after reading (a batch's addendum) stay at the end.
        extra = self.paper.sections[len(self.pdf.paper().sections):]
        before, started = _snapshot(caller.totals), time.perf_counter()
        status = "failed"
        try:
            paper, report = await read_with_model(
                self.pdf, caller=caller, mode=mode, prompts_dir=self.opts.prompts_dir,
                concurrency=self.opts.concurrency,
                on_page=lambda page, _: self.progress.advance(f"page {page + 1}"))
            status = "partial" if report.fallback else "done"
        finally:
            m.stages["ingest"] = self.stage_figures("ingest", {
                **_stage_delta(before, caller.totals),
                "seconds": round(time.perf_counter() - started, 2)}, status)
            if caller is not self.caller:  # the transcriptions count toward --max-cost
                self.caller.spent_before += caller.totals.cost - before.cost
        paper.sections += extra
        paper.read_from = self.paper.read_from
        self.paper = paper
        m.paper.update(tokens=paper.estimate_tokens(), warnings=list(paper.warnings),
                       reader=report.to_dict())
        for line in report.lines():
            self.progress.say(styled(("Reader:", "cyan"), f" {line}"))
            log.info("reader: %s", line)
        self.save()

    async def prepare_paper(self) -> None:
        notes: list[str] = []

        async def summarize(heading: str, text: str, target: int) -> str:
            self.progress.working(heading[:40])
            msgs: list[Message] = [{"role": "system", "content": self.render("system")},
                                   {"role": "user", "content": self.render(
                                       "summarize", heading=heading,
                                       text=clip(text, self.budget.input - 300, heading, notes),
                                       target_tokens=target)}]
            # A summary is lossy by nature: one cut off by its length limit is kept (logged).
            c = await self.call(msgs, stage="summarize", file=heading[:80],
                                max_tokens=min(self.budget.reserve, max(target * 2, 128)),
                                accept_cut=True)
            self.progress.advance(heading[:40])
            return c.text.strip()

        paper = self.paper
        if not self.opts.keep_references and (paper.references or any(
                s.kind == "references" for s in paper.sections)):
            # The reference list carries no implementation detail and is resent on every
            # call; in-text citations stay. --keep-references sends it.
            paper = paper.without(["references"])
            self.manifest.paper["references_in_prompts"] = False
        reduced: list[dict[str, Any]] = []
        self.paper_md, self.paper_reductions = await reduce_paper(
            paper, self.budget.paper, summarize, notes, reduced,
            planned=lambda n: self.progress.stage("summarize", n) if n else None)
        self.manifest.reduced = [r for r in self.manifest.reduced if r.get("what") != "paper"]
        self.manifest.reduced.extend(reduced)  # structured: what was dropped, summarized, cut
        for n in notes:
            self.note(n)

    def stage_figures(self, name: str, session: dict[str, Any], status: str) -> StageRecord:
        """A stage's figures over every session of the run: this session's added to the
        earlier ones (a rerun from the cache keeps what planning cost and took)."""
        earlier = figures(self.earlier_stages.get(name))
        return StageRecord.model_validate({**earlier.plus(figures(session)), "status": status,
                                           "session": session})

    async def run(self) -> Manifest:
        from papercoder.pipeline import analysis, coding, planning

        m = self.manifest
        stages = {"planning": planning.run, "analysis": analysis.run, "coding": coding.run}
        last = STAGE_NAMES.index(self.opts.stop_after)
        names = list(STAGE_NAMES[: last + 1])
        if self.opts.no_contract:
            m.requirements = {"status": "off", "reason": "--no-contract"}
        else:  # the paper contract: extracted first, audited after coding
            from papercoder import audit, requirements

            stages.update({"requirements": requirements.stage.run, "audit": audit.run})
            names = ["requirements", *names] + (["audit"] if last == 2 else [])
        try:
            await self.read_pages()
            before, started = _snapshot(self.caller.totals), time.perf_counter()
            await self.prepare_paper()
            self.recall_reductions()
            if self.caller.totals.calls > before.calls:  # the model summarized sections
                m.stages["reading"] = self.stage_figures("reading", {
                    **_stage_delta(before, self.caller.totals),
                    "seconds": round(time.perf_counter() - started, 2)}, "done")
            elif "reading" not in self.earlier_stages:
                m.stages.pop("reading", None)
            for name in names:
                before = _snapshot(self.caller.totals)
                started = time.perf_counter()
                m.stages.setdefault(name, StageRecord()).status = "running"
                self.save()
                await stages[name](self)
                m.stages[name] = self.stage_figures(name, {
                    **_stage_delta(before, self.caller.totals),
                    "seconds": round(time.perf_counter() - started, 2)},
                    "partial" if _stage_failures(m, name) else "done")
                self.save()
            failed, unanalyzed = m.files_with("failed"), m.unanalyzed()
            if self.opts.stop_after != "coding":
                m.status = "planned" if self.opts.stop_after == "planning" else "analyzed"
            elif failed:
                # partial: some files written; failed: none of them (a script can tell)
                m.status = "failed" if len(failed) == len(m.files) else "partial"
            else:
                m.status = "partial" if unanalyzed else "done"
            problems = []
            if failed:
                problems.append(f"{len(failed)} of {len(m.files)} files could not be "
                                "generated: " + ", ".join(failed))
            if unanalyzed:
                problems.append(f"{len(unanalyzed)} files were coded without their analysis, "
                                "which failed: " + ", ".join(unanalyzed))
            m.error = "; ".join(problems) or None
        except BudgetExceeded as e:
            m.status, m.error = "stopped", str(e)
            raise
        except PapercoderError as e:
            m.status, m.error = "failed", str(e)
            raise
        except BaseException:
            m.status, m.error = "interrupted", "the run was interrupted; rerun to resume"
            raise
        finally:
            for st in m.stages.values():
                if st.status == "running":
                    st.status = m.status
            t = self.caller.totals
            if self.reader_caller is not None:  # --reader-model: its calls are the run's too
                r = self.reader_caller.totals
                t = Totals(t.calls + r.calls, t.cache_hits + r.cache_hits, t.usage + r.usage,
                           t.cost + r.cost, t.unpriced_calls + r.unpriced_calls,
                           t.seconds + r.seconds)
            m.totals = self.earlier_totals.add_session({
                **_stage_delta(Totals(), t),
                "wall_seconds": round(time.perf_counter() - self.t0, 2)})
            m.finished = time.time()
            self.save()
            self.store.set_run_status(m.run_id, m.status)
        return m


def plain_layout(messages: list[Message]) -> list[Message]:
    """The published layout: system prompt, then everything in one user turn, no breakpoints."""
    out: list[Message] = []
    for msg in messages:
        if out and out[-1]["role"] == msg["role"] == "user":
            out[-1] = {"role": "user", "content": out[-1]["content"] + "\n\n" + msg["content"]}
        else:
            out.append({"role": msg["role"], "content": msg["content"]})
    return out


def _stage_failures(m: Manifest, stage: str) -> list[str]:
    """The files a finished stage could not produce (its status is then "partial")."""
    if stage == "analysis":
        return m.unanalyzed()
    if stage == "coding":
        return m.files_with("failed")
    if stage in ("requirements", "audit") and m.requirements.get("status") == "failed":
        return ["requirements"]
    return []


def _snapshot(t: Totals) -> Totals:
    return Totals(t.calls, t.cache_hits, t.usage, t.cost, t.unpriced_calls, t.seconds)


def _stage_delta(before: Totals, now: Totals) -> dict[str, Any]:
    u, b = now.usage, before.usage
    priced = now.unpriced_calls == before.unpriced_calls
    return {
        "calls": now.calls - before.calls,
        "cache_hits": now.cache_hits - before.cache_hits,
        "prompt_tokens": u.prompt_tokens - b.prompt_tokens,
        "cached_prompt_tokens": u.cached_prompt_tokens - b.cached_prompt_tokens,
        "cache_write_tokens": u.cache_write_tokens - b.cache_write_tokens,
        "completion_tokens": u.completion_tokens - b.completion_tokens,
        "cost_usd": round(now.cost - before.cost, 6) if priced else None,
    }
