"""Rubric mode: grade every leaf 0/1 with the judge, concurrently (the paper contract's
leaves, ``--rubric auto``: met/partial/unmet, scoring 1, 0.5, 0).

Per leaf: the judge ranks the repository's file tree for the requirement; the top
``TOP_FILES`` known paths (each already capped at 200 kB) are fitted to the window; the judge
states expectations, reality and the score. A leaf whose grading fails scores 0 and is
marked invalid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from papercoder.evaluate import files as F
from papercoder.evaluate.judge import JUDGE_FAILURES
from papercoder.evaluate.rubric import CODE_DEV, CODE_EXEC, LeafContext, outline
from papercoder.llm import Caller
from papercoder.models.base import Message
from papercoder.prompts import render
from papercoder.tokens import estimate_tokens

TOP_FILES = 10

CATEGORY_NOTES = {
    CODE_DEV: "Judge whether the code implements this correctly; it need not have been run.",
    CODE_EXEC: "Judge whether running reproduce.sh actually carried this out, from the "
               "script and its log; code that exists but was not run does not count.",
    "Result Analysis": "Judge whether the results the reproduction produced (in its log and "
                       "outputs) show this outcome.",
}


class FileRanking(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    files: list[str]
    """Repository paths, most relevant first."""

    @field_validator("files", mode="before")
    @classmethod
    def _strings(cls, v: Any) -> Any:
        return [str(x) for x in v] if isinstance(v, list) else v


class LeafGrade(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    expectations: str
    """What the submission would contain if the criterion were met."""
    reality: str
    """What the submission actually contains, citing files and functions."""
    score: int = Field(ge=0, le=1)
    """1 when the criterion is fully met, else 0."""

    @field_validator("score", mode="before")
    @classmethod
    def _no_bool(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("score must be the integer 0 or 1")
        return v


class LeafVerdict(BaseModel):
    """A leaf of the paper contract (``--rubric auto``), graded met, partial or unmet as the
    audit grades a requirement; ``partial`` counts half."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    expectations: str
    """What the submission would contain if the requirement were met."""
    reality: str
    """What the submission actually contains, citing files and functions."""
    verdict: Literal["met", "partial", "unmet"]
    """met: implemented as the paper says; partial: part of it, or a detail deviates;
    unmet: missing or wrong."""

    @field_validator("verdict", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v


VERDICT_SCORE = {"met": 1.0, "partial": 0.5, "unmet": 0.0}


@dataclass
class LeafJob:
    ctx: LeafContext
    needs_log: bool


@dataclass
class Grader:
    caller: Caller
    prefix: list[Message]
    """System prompt and paper: the stable start of every call."""
    files: list[F.RepoFile]
    budget: int
    """Tokens available for the files shown with one leaf."""
    tree_budget: int
    log: str | None
    log_note: str | None
    concurrency: int = 4
    repairs: int = 2
    on_done: Callable[[], None] | None = None
    partial: bool = False
    """Grade leaves met/partial/unmet (1, 0.5, 0) instead of 0/1: the paper contract's
    leaves (``--rubric auto``), as in the run's audit."""

    def _tree(self, requirement: str) -> tuple[str, list[F.RepoFile]]:
        """The file tree for the ranking prompt, in path order; when too long, the files
        most related to the requirement by vocabulary."""
        full = F.tree(self.files)
        if estimate_tokens(full) + len(self.files) <= self.tree_budget:
            return full, list(self.files)
        candidates = F.rank(self.files, requirement)
        lines, used, kept = [], 0, []
        for f in candidates:
            line = f"{f.path} ({f.lines} lines)"
            t = estimate_tokens(line) + 1
            if used + t > self.tree_budget:
                break
            lines.append(line)
            kept.append(f)
            used += t
        return "\n".join(lines), kept

    async def _rank(self, job: LeafJob) -> tuple[list[F.RepoFile], str | None]:
        req = job.ctx.leaf.requirements
        tree, listed = self._tree(req)
        by_path = {f.path: f for f in listed}
        note = None
        chosen: list[F.RepoFile] = []
        try:
            c = await self.caller.call(
                self.prefix + [{"role": "user", "content": render(
                    "eval_rank", requirement=req, tree=tree, limit=TOP_FILES)}],
                stage="eval", file=f"rank:{job.ctx.leaf.id}", schema=FileRanking,
                repairs=self.repairs)
            for p in c.parsed.files:
                f = by_path.get(p.strip().strip("`").removeprefix("./"))
                if f is not None and f not in chosen:
                    chosen.append(f)
        except JUDGE_FAILURES as e:
            note = f"file ranking failed ({e}); files chosen by vocabulary"
        if not chosen:
            note = note or "the judge named no file of the tree; files chosen by vocabulary"
            chosen = F.rank(self.files, req)
        chosen = chosen[:TOP_FILES]
        if job.needs_log:
            script = next((f for f in self.files if f.path == "reproduce.sh"), None)
            if script is not None and script not in chosen:
                chosen = [script] + chosen[:TOP_FILES - 1]
        return chosen, note

    async def grade(self, job: LeafJob) -> None:
        leaf = job.ctx.leaf
        if job.needs_log and self.log is None:
            leaf.score, leaf.valid, leaf.flag = 0.0, False, "no-log"
            leaf.explanation = ("Not graded: this criterion is judged on the reproduction log, "
                                "and there is none (run verify or give --log).")
            return
        chosen, note = await self._rank(job)
        log_text = self.log if job.needs_log else None
        budget = self.budget - (estimate_tokens(log_text) if log_text else 0)
        shown, left = F.fit(chosen, max(budget, 0))
        leaf.files = [f.path for f in shown]
        left_note = "; ".join(f"{x.path} left out: {x.reason}" for x in left)
        prompt = render("eval_leaf", outline=outline(job.ctx),
                        category=leaf.task_category or CODE_DEV,
                        category_note=CATEGORY_NOTES.get(leaf.task_category or CODE_DEV, ""),
                        log=log_text, log_note=self.log_note if job.needs_log else None,
                        left_out=left_note, code=F.render(shown) or "(no files)",
                        partial=self.partial)
        schema: type[LeafGrade] | type[LeafVerdict] = LeafVerdict if self.partial else LeafGrade
        try:
            c = await self.caller.call(self.prefix + [{"role": "user", "content": prompt}],
                                       stage="eval", file=leaf.id, schema=schema,
                                       repairs=self.repairs)
        except JUDGE_FAILURES as e:
            leaf.score, leaf.valid = 0.0, False
            leaf.explanation = f"Grading failed: {e}"
            return
        g = c.parsed if isinstance(c.parsed, schema) else schema.model_validate(c.parsed)
        if isinstance(g, LeafVerdict):
            leaf.score, verdict = VERDICT_SCORE[g.verdict], f"Verdict: {g.verdict}\n\n"
        else:
            leaf.score, verdict = float(g.score), ""
        leaf.valid = True
        leaf.explanation = f"{verdict}Expectations: {g.expectations}\n\nReality: {g.reality}"
        extra = [n for n in (note, ("left out: " + left_note) if left_note else None) if n]
        if extra:
            leaf.explanation += "\n\n(" + "; ".join(extra) + ")"

    async def grade_all(self, jobs: list[LeafJob]) -> None:
        sem = asyncio.Semaphore(max(1, self.concurrency))

        async def one(job: LeafJob) -> None:
            async with sem:
                await self.grade(job)
            if self.on_done:
                self.on_done()

        await asyncio.gather(*(one(j) for j in jobs))
