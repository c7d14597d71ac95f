"""Stage 2: one detailed analysis per file, run concurrently (bounded by --concurrency)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from papercoder.errors import FormatError, ModelOutputError, PapercoderError
from papercoder.models.base import Completion
from papercoder.outdir.record import FileRecord
from papercoder.outdir.workspace import artifact_name
from papercoder.pipeline.context import clip
from papercoder.pipeline.refine import verify_and_refine
from papercoder.requirements.stage import for_file

if TYPE_CHECKING:
    from papercoder.pipeline.runner import Pipeline

log = logging.getLogger("papercoder")


def check_analysis(c: Completion) -> str:
    if len(c.text.strip()) < 20:
        raise FormatError("Your analysis is empty. Write the detailed analysis in Markdown.",
                          user_message="the analysis was empty")
    return c.text.strip() + "\n"


async def analyze(p: Pipeline, file: str, sem: asyncio.Semaphore) -> None:
    key = f"analysis:{file}"
    rel = f"analysis/{artifact_name(file)}.md"
    if p.opts.from_stage not in ("planning", "analysis") and p.manifest.steps.get(key) == "done":
        existing = p.ws.read_artifact(rel)
        if existing is not None:
            p.analyses[file] = existing
            p.progress.advance(file)
            return
    assert p.logic is not None
    notes = next((x.notes for x in p.logic.logic_analysis if x.file == file), "")
    reduction_notes: list[str] = []
    prompt = p.render("analysis", file=file,
                      notes=clip(notes, p.budget.input // 10, f"notes for {file}",
                                 reduction_notes),
                      depends_on=p.deps.get(file, []), requirements=for_file(p, file))
    for n in reduction_notes:
        p.note(n)
    messages = p.plan_prefix() + [{"role": "user", "content": prompt}]
    async with sem:
        try:
            c = await p.call(messages, stage="analysis", file=file, check=check_analysis)
        except ModelOutputError as e:
            p.warn(f"analysis of {file} failed ({e}); its logic notes stand in for it")
            p.analyses[file] = notes or f"Implement {file} as the design describes."
            p.manifest.files.setdefault(file, FileRecord()).analysis_error = str(e)
            p.progress.advance(file)
            return
        if p.opts.refine:
            p.ws.write_artifact(f"refine/analysis__{artifact_name(file)}.draft.md", c.parsed)
            c = await verify_and_refine(p, name=f"analysis__{artifact_name(file)}",
                                        kind=f"analysis of {file}", messages=messages,
                                        content=c.parsed, file=file, check=check_analysis,
                                        format_hint="Answer with the whole analysis in "
                                        "Markdown.")
    p.analyses[file] = c.parsed
    p.ws.write_artifact(rel, c.parsed)
    if file in p.manifest.files:
        p.manifest.files[file].unset("analysis_error")
    p.done(key)
    p.save()
    p.progress.advance(file)


PROMPT_CACHES = ("openai", "anthropic")
"""Providers whose prompt cache the analyses share."""
WARM = "Reply with the single word OK."


async def warm_cache(p: Pipeline) -> None:
    """One one-token call writes the provider's prompt cache for the shared paper-and-plan
    prefix; the analyses, all sent together after it, read it instead of each writing it.
    It costs a time to first token, not a whole answer."""
    try:
        # A reasoning model may spend a small budget on reasoning and stop on length: the
        # prompt is cached all the same, so a cut answer is kept, not counted as a failure.
        await p.call(p.plan_prefix() + [{"role": "user", "content": WARM}], stage="analysis",
                     file="(prompt cache)", max_tokens=16 if p.caller.settings.reasoning else 1,
                     repairs=0, continuations=0, accept_cut=True)
    except PapercoderError as e:  # only an optimisation: the analyses still run
        log.info("prompt-cache warm-up failed: %s", e)


async def run(p: Pipeline) -> None:
    p.progress.stage("analysis", len(p.order))
    sem = asyncio.Semaphore(p.opts.concurrency)
    redo = p.opts.from_stage in ("planning", "analysis")
    todo = [f for f in p.order if redo or p.manifest.steps.get(f"analysis:{f}") != "done"]
    if p.opts.layout == "stable" and len(todo) > 1 and p.model.provider in PROMPT_CACHES:
        await warm_cache(p)
    results = await asyncio.gather(*(analyze(p, f, sem) for f in p.order),
                                   return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
