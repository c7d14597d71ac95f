"""Per-page facts of a PDF read, and how a page's Markdown transcription is cut to fit it.

The default reader knows, for every page, which display equations and algorithm boxes it
found (:class:`PageFindings`) and which of its section headings start on the page. A
transcription of a page (by a model that saw the page image) replaces the text of that page
only: :func:`split_transcript` cuts it at the headings the default reader found on the page,
so each piece goes to its own section and the section structure stays the default reader's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from papercoder.paper.pdf_headings import norm, strip_number

_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(?P<text>.*?)\s*#*\s*$")
_RUN_IN = re.compile(r"^\s*(?:\*\*|__)(?P<text>[^*_].*?)(?:\*\*|__)\s*(?P<rest>\S.*)$")
_BOLD_LINE = re.compile(r"^\s*(?:\*\*|__)(?P<text>[^*_].*?)(?:\*\*|__)[.:]?\s*$")
_DISPLAY = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]", re.S)


@dataclass
class PageFindings:
    """What the default reader found per page (0-based page numbers), and what became of
    the transcriptions it was given."""

    pages: int = 0
    equations: set[int] = field(default_factory=set)
    """Pages with at least one display equation."""
    algorithms: set[int] = field(default_factory=set)
    """Pages with an algorithm box."""
    spliced: list[int] = field(default_factory=list)
    """Pages whose text was replaced by their transcription."""
    kept: dict[int, str] = field(default_factory=dict)
    """Pages whose transcription was not used, and why (their default text stays)."""

    def maths_pages(self) -> list[int]:
        """Pages with display maths or an algorithm box, in order."""
        return sorted(self.equations | self.algorithms)


def _key(text: str) -> str:
    t = re.sub(r"[*_`]+", "", text).strip()
    return norm(strip_number(t)) or norm(t)


def _matches(line: str, heading: str, *, marked: bool) -> bool:
    """Whether a transcription line is the given heading (numbering and emphasis aside):
    a Markdown heading or bold line (``marked``), else a line of the heading's text alone."""
    m = _MD_HEADING.match(line) or _BOLD_LINE.match(line)
    if marked != (m is not None):
        return False
    text = m.group("text") if m else line.strip()
    if not text or len(text) > 200:
        return False
    a, b = _key(text), _key(heading)
    if not a or not b:
        return False
    if a == b:
        return True
    if m is None:
        return False  # an unmarked line must be the heading exactly
    short, long = sorted((a, b), key=len)
    return len(short) >= 6 and long.startswith(short)


def _run_in(line: str, heading: str) -> str | None:
    """The rest of a paragraph that opens with the heading in bold ("**Training.** We
    train ..."), or None."""
    m = _RUN_IN.match(line)
    if m and _key(m.group("text")) == _key(heading) and _key(heading):
        return m.group("rest")
    return None


def demote_headings(text: str) -> str:
    """Markdown heading lines that are not section headings become bold lines, so the
    transcription cannot open sections of its own."""
    out = []
    fenced = False
    for line in text.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        m = None if fenced else _MD_HEADING.match(line)
        out.append(f"**{m.group('text')}**" if m and m.group("text") else line)
    return "\n".join(out)


def split_transcript(text: str, headings: list[str]) -> list[str] | None:
    """The transcription cut at ``headings`` (the section headings that start on the page,
    in order): ``[before the first, after the first, ...]``, heading lines removed and other
    Markdown headings demoted. None when the headings are not all found, in order."""
    lines = text.split("\n")
    cuts: list[int] = []
    pos = 0
    fenced = False
    fence_at: list[bool] = []
    for line in lines:  # no heading inside a code block or a display equation
        fence_at.append(fenced)
        s = line.strip()
        if s.startswith(("```", "~~~")) or s == "$$":
            fenced = not fenced
        elif s.startswith("\\[") and not s.endswith("\\]"):
            fenced = True
        elif s.endswith("\\]"):
            fenced = False
    for h in headings:
        # A marked heading first; then a line of the heading's text alone; then a paragraph
        # that opens with it in bold (the rest of that line stays in the section).
        found = None
        for how in ("marked", "plain", "run-in"):
            for i in range(pos, len(lines)):
                if fence_at[i]:
                    continue
                if how == "run-in":
                    rest = _run_in(lines[i], h)
                    if rest is not None:
                        lines[i] = "\x00" + rest  # the heading is cut, its paragraph kept
                        found = i
                        break
                elif _matches(lines[i], h, marked=how == "marked"):
                    found = i
                    break
            if found is not None:
                break
        if found is None:
            return None
        cuts.append(found)
        pos = found + 1
    bounds = [-1, *cuts, len(lines)]
    pieces = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        start = a if a >= 0 and lines[a].startswith("\x00") else a + 1
        body = lines[start:b]
        if body and body[0].startswith("\x00"):
            body = [body[0][1:], *body[1:]]
        pieces.append(demote_headings("\n".join(body)).strip())
    return pieces


def display_equations(text: str) -> list[str]:
    """The display equations of a transcription (``$$ … $$`` or ``\\[ … \\]``), one line
    each."""
    out = []
    for m in _DISPLAY.finditer(text):
        body = (m.group(1) or m.group(2) or "").strip()
        if body:
            out.append(" ".join(body.split()))
    return out
