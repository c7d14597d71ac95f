"""The context budget: fitting the paper and the artifacts into the model's window.

Nothing is cut silently. The paper is reduced in announced steps (references, then
acknowledgements and appendices, then section summaries written by the model); any text that
still has to be shortened carries a visible marker, and every reduction is reported.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from papercoder.paper import Paper
from papercoder.tokens import estimate_tokens

SAFETY = 0.85  # our token estimate is approximate; leave headroom
STAGE_OUTPUT_SHARE = {"plan": 0.35, "architecture": 0.5, "logic": 0.6, "config": 0.3,
                      "analysis": 0.35, "coding": 1.0, "verify": 0.25, "refine": 0.6}
"""Share of the answer reserve each stage may use when the window is small."""


@dataclass
class Budget:
    window: int
    """The model's context window in tokens."""
    reserve: int
    """Tokens kept free for the answer."""

    @classmethod
    def for_window(cls, window: int, max_output: int) -> Budget:
        reserve = min(max_output, 4096 if window >= 32768 else max(512, window // 4))
        return cls(window=window, reserve=reserve)

    @property
    def small(self) -> bool:
        return self.window < 32768

    def max_tokens_for(self, stage: str) -> int | None:
        """Per-stage answer caps for small windows (small local models ramble; a cap keeps a
        run within minutes). Large windows send none."""
        if not self.small:
            return None
        share = STAGE_OUTPUT_SHARE.get(stage, 1.0)
        return max(128, int(self.reserve * share))

    @property
    def input(self) -> int:
        return int((self.window - self.reserve) * SAFETY)

    @property
    def paper(self) -> int:
        return int(self.input * (0.45 if self.small else 0.6))

    @property
    def plan(self) -> int:
        return int(self.input * 0.25)


def clip(text: str, max_tokens: int, label: str, notes: list[str]) -> str:
    """Shorten ``text`` to about ``max_tokens`` with a visible marker, and record it."""
    have = estimate_tokens(text)
    if have <= max_tokens:
        return text
    keep = max(int(len(text) * max_tokens / have) - 80, 0)
    notes.append(f"{label} shortened from ~{have} to ~{max_tokens} tokens to fit the context "
                 "window")
    return text[:keep].rstrip() + (
        f"\n[... {label}: about {have - max_tokens} tokens omitted here to fit the model's "
        "context window ...]"
    )


Summarizer = Callable[[str, str, int], Awaitable[str]]


def _names(headings: list[str], limit: int = 8) -> str:
    shown = ", ".join(f"'{h}'" for h in headings[:limit])
    return shown + (f" and {len(headings) - limit} more" if len(headings) > limit else "")


async def reduce_paper(paper: Paper, budget_tokens: int, summarize: Summarizer | None,
                       notes: list[str], reduced: list[dict[str, Any]] | None = None,
                       planned: Callable[[int], None] | None = None) -> tuple[str, str]:
    """The paper's Markdown within ``budget_tokens``, and a short phrase saying what was done.
    ``planned`` is told how many sections will be summarized, before the first summary.

    Every step names what was lost in ``notes`` (sentences for the console) and ``reduced``
    (records ``{"what": "paper", "action": "dropped"|"summarized"|"cut", "sections": [...],
    "tokens_before": int, "tokens_after": int}`` for run.json).
    """
    records = reduced if reduced is not None else []
    md = paper.to_markdown()
    if estimate_tokens(md) <= budget_tokens:
        return md, ""
    done: list[str] = []
    for kinds, what in ((("references",), "references"),
                        (("acknowledgements", "appendix"), "acknowledgements and appendices")):
        dropped = paper.without(kinds)
        if dropped.to_markdown() != paper.to_markdown():
            heads = [s.heading for s in paper.sections if s.kind in kinds]
            if "references" in kinds and paper.references and not heads:
                heads = ["References"]
            before = estimate_tokens(paper.to_markdown())
            paper = dropped
            after = estimate_tokens(paper.to_markdown())
            done.append(f"{what} removed")
            records.append({"what": "paper", "action": "dropped", "sections": heads,
                            "tokens_before": before, "tokens_after": after})
            notes.append(f"paper: {what} removed to fit the context window "
                         f"(dropped: {_names(heads)})")
            records[-1]["message"] = notes[-1]
        md = paper.to_markdown()
        if estimate_tokens(md) <= budget_tokens:
            return md, "; ".join(done)
    if summarize is not None and paper.sections:
        total = sum(s.tokens() for s in paper.sections) or 1
        overhead = estimate_tokens(md) - total
        room = max(budget_tokens - overhead, 64 * len(paper.sections))
        before = estimate_tokens(md)
        new_sections, heads = [], []
        targets = [max(int(room * s.tokens() / total), 48) for s in paper.sections]
        if planned is not None:
            planned(sum(s.tokens() > t for s, t in zip(paper.sections, targets, strict=True)))
        for s, target in zip(paper.sections, targets, strict=True):
            if s.tokens() > target:
                text = await summarize(s.heading, s.text, target)
                new_sections.append(type(s)(heading=s.heading, text=text, level=s.level,
                                            kind=s.kind))
                heads.append(s.heading)
            else:
                new_sections.append(s)
        paper = Paper(**{**paper.__dict__, "sections": new_sections})
        md = paper.to_markdown()
        done.append("sections summarized by the model")
        records.append({"what": "paper", "action": "summarized", "sections": heads,
                        "tokens_before": before, "tokens_after": estimate_tokens(md)})
        notes.append(f"paper: {len(heads)} sections summarized by the model to fit the context "
                     f"window ({_names(heads)})")
        records[-1]["message"] = notes[-1]
    if estimate_tokens(md) > budget_tokens:
        before = estimate_tokens(md)
        cut_notes: list[str] = []
        clipped = clip(md, budget_tokens, "paper", cut_notes)
        kept = len(clipped.rsplit("\n[... paper:", 1)[0]) if cut_notes else len(md)
        lost, partly = lost_sections(paper, md, kept)
        records.append({"what": "paper", "action": "cut", "sections": lost,
                        "partly": partly, "tokens_before": before,
                        "tokens_after": estimate_tokens(clipped)})
        notes.append(f"paper: cut from ~{before} to ~{budget_tokens} tokens to fit the context "
                     "window; " + (f"'{partly}' is cut short" if partly else "")
                     + ("; " if partly and lost else "")
                     + (f"omitted: {_names(lost)}" if lost else "")
                     + ("" if lost or partly else "the end is cut"))
        records[-1]["message"] = notes[-1]
        md = clipped
        done.append("shortened with a marker")
    return md, "; ".join(done)


def lost_sections(paper: Paper, md: str, kept_chars: int) -> tuple[list[str], str | None]:
    """The sections wholly after ``kept_chars`` of ``md``, and the one the cut falls in."""
    starts: list[tuple[int, str]] = []
    pos = 0
    for s in paper.sections:
        hashes = "#" * min(max(s.level, 1) + 1, 6)
        i = md.find(f"{hashes} {s.heading}".rstrip(), pos)
        if i < 0:
            continue
        starts.append((i, s.heading))
        pos = i + 1
    lost = [h for i, h in starts if i >= kept_chars]
    before = [h for i, h in starts if i < kept_chars]
    partly = before[-1] if before and len(md) > kept_chars else None
    return lost, partly
