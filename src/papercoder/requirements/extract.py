"""Stage ``requirements``: the model lists the paper's requirements; every quote is checked.

One call for a paper that fits one prompt (the run's cached paper prefix); a long paper is
split into section groups asked concurrently, merged and de-duplicated. A requirement whose
quote is not in the paper is sent back once with the reason, then dropped and listed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from papercoder.errors import FormatError
from papercoder.models.base import Completion, Message
from papercoder.paper import Paper
from papercoder.requirements.quotes import QuoteIndex, skeleton
from papercoder.requirements.schema import Contract, Dropped, ExtractionAnswer, Requirement
from papercoder.tokens import estimate_tokens

log = logging.getLogger("papercoder")

MAX_REQUIREMENTS = 80
"""The contract's bound: more are left out (listed as dropped) and the run says so."""
GROUP_TOKENS = 12_000
"""A paper longer than this is asked in section groups of about this size."""
MAX_GROUPS = 8

Ask = Callable[[list[Message], str | None, Callable[[Completion], Any]], Awaitable[Completion]]
"""How a prompt reaches the model: (messages, part label or None, check) -> completion."""


@dataclass
class Part:
    label: str | None
    text: str
    """The part of the paper (empty: the whole paper is already in the prompt's prefix)."""


@dataclass
class Outcome:
    kept: list[Requirement] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)


def section_groups(paper: Paper, limit: int = GROUP_TOKENS) -> list[Part]:
    """The paper in consecutive groups of sections of at most about ``limit`` tokens (one
    group, with no text, when the whole paper fits)."""
    sections = [s for s in paper.sections if s.kind != "references"]
    if paper.estimate_tokens() <= limit or len(sections) < 2:
        return [Part(None, "")]
    groups: list[list[Any]] = [[]]
    size = estimate_tokens(paper.abstract)
    for s in sections:
        n = estimate_tokens(s.text) + 20
        if groups[-1] and size + n > limit:
            groups.append([])
            size = 0
        groups[-1].append(s)
        size += n
    if len(groups) > MAX_GROUPS:  # fewer, larger groups
        per = -(-len(sections) // MAX_GROUPS)
        groups = [sections[i:i + per] for i in range(0, len(sections), per)]
    parts = []
    for i, g in enumerate(groups):
        body = "\n\n".join(f"{'#' * max(1, min(s.level + 1, 6))} {s.heading}\n\n{s.text}"
                           for s in g)
        if i == 0 and paper.abstract:
            body = f"## Abstract\n\n{paper.abstract}\n\n{body}"
        label = f"part {i + 1} of {len(groups)}: {g[0].heading[:40]} to {g[-1].heading[:40]}"
        parts.append(Part(label, body))
    return parts


def make_check(index: QuoteIndex) -> tuple[Callable[[Completion], Outcome], dict[str, Any]]:
    """The check of one extraction answer: quotes not in the paper are sent back once (with
    the reasons), then dropped and listed."""
    state: dict[str, Any] = {"sent_back": [], "asked": False}

    def check(c: Completion) -> Outcome:
        answer: ExtractionAnswer = c.parsed
        if not answer.requirements:
            raise FormatError("The list of requirements is empty. List the paper's "
                              "requirements as the JSON object asked for.",
                              user_message="the list of requirements was empty")
        bad = [(r, index.problem(r.quote)) for r in answer.requirements]
        bad = [(r, why) for r, why in bad if why]
        if bad and not state["asked"]:
            state["asked"] = True
            state["sent_back"] = [Dropped(statement=r.statement, quote=r.quote,
                                          reason=str(why)) for r, why in bad]
            lines = "; ".join(f"{r.id}: {why}" for r, why in bad[:30])
            raise FormatError(
                f"Some quotes are not in the paper ({lines}). Copy each of these quotes "
                "character for character from the paper, or leave the requirement out if "
                "the paper does not say it. Send the whole JSON object again.",
                user_message=f"{len(bad)} quotes were not in the paper")
        out = Outcome(kept=[r for r in answer.requirements if not index.problem(r.quote)])
        out.dropped = [Dropped(statement=r.statement, quote=r.quote, reason=str(why))
                       for r, why in bad]
        kept = {skeleton(r.statement) for r in out.kept} | {skeleton(r.quote) for r in out.kept}
        seen = {skeleton(d.statement) for d in out.dropped}
        for d in state["sent_back"]:  # sent back, then left out or still not in the paper
            if skeleton(d.statement) not in kept and skeleton(d.quote) not in kept and \
                    skeleton(d.statement) not in seen:
                out.dropped.append(d)
        return out

    return check, state


def merge(outcomes: list[Outcome], limit: int = MAX_REQUIREMENTS) -> tuple[Contract, int, int]:
    """One contract from the parts' answers: duplicates (same quote or same statement) are
    removed, ids renumbered R1, R2, ... and at most ``limit`` kept. Returns the contract, the
    number of duplicates removed and the number left out by the bound."""
    kept: list[Requirement] = []
    dropped: list[Dropped] = []
    seen: set[str] = set()
    duplicates = over = 0
    for o in outcomes:
        dropped.extend(o.dropped)
        for r in o.kept:
            keys = {"q" + skeleton(r.quote), "s" + skeleton(r.statement)}
            if keys & seen:
                duplicates += 1
                continue
            seen |= keys
            if len(kept) >= limit:
                over += 1
                dropped.append(Dropped(statement=r.statement, quote=r.quote, reason=(
                    f"over the contract's bound of {limit} requirements")))
                continue
            kept.append(r.model_copy(update={"id": f"R{len(kept) + 1}"}))
    return Contract(requirements=kept, dropped=dropped), duplicates, over


async def extract(ask: Ask, parts: list[Part], index: QuoteIndex) -> tuple[list[Outcome],
                                                                           list[str]]:
    """Ask every part (concurrently); returns the outcomes and the failures' messages."""
    async def one(part: Part) -> Outcome:
        check, _ = make_check(index)
        c = await ask([], part.label, check)
        return c.parsed

    results = await asyncio.gather(*(one(p) for p in parts), return_exceptions=True)
    outcomes: list[Outcome] = []
    failures: list[str] = []
    for r in results:
        if isinstance(r, Outcome):
            outcomes.append(r)
        elif isinstance(r, Exception) and _recoverable(r):
            failures.append(str(r))
        else:
            raise r  # a budget stop, Ctrl-C, a bug: not a failed extraction
    return outcomes, failures


def _recoverable(e: BaseException) -> bool:
    from papercoder.errors import ContextOverflowError, ModelOutputError

    return isinstance(e, (ModelOutputError, ContextOverflowError))
