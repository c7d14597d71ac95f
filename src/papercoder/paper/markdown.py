"""Markdown and plain text: headings become sections, LaTeX math is kept as written."""

from __future__ import annotations

import re

from papercoder.paper.model import Paper, Section, section_kind

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\begin\{(equation|align)\*?\}(.+?)"
                           r"\\end\{\3\*?\}", re.S)
_FENCE = re.compile(r"^(```|~~~)")


def parse_markdown(text: str, *, source: str = "", source_format: str = "markdown") -> Paper:
    title = ""
    abstract = ""
    sections: list[Section] = []
    cur: Section | None = None
    buf: list[str] = []
    in_fence = False

    def flush() -> None:
        nonlocal abstract
        body = "\n".join(buf).strip()
        if cur is None:
            if body and not abstract:
                abstract = body if not sections else abstract
        elif cur.kind == "abstract":
            abstract = body
        else:
            cur.text = body
            sections.append(cur)
        buf.clear()

    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            in_fence = not in_fence
        m = None if in_fence else _HEADING.match(line)
        if m:
            level, heading = len(m.group(1)), m.group(2).strip()
            if level == 1 and not title:
                flush()
                title = heading
                cur = None
                continue
            flush()
            is_abstract = heading.strip("*# ").lower() == "abstract"
            kind = "abstract" if is_abstract else section_kind(heading)
            cur = Section(heading=heading, text="", level=max(level - 1, 1), kind=kind)
            continue
        buf.append(line)
    flush()
    if not title:
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "Untitled")
        title = first[:200]
    equations = [next(g for g in m.groups() if g and g not in ("equation", "align")).strip()
                 for m in _DISPLAY_MATH.finditer(text)]
    fig_re = r"(?m)^\**(Figure|Fig\.)\s*\d+[.:].*$"
    figures = [m.group(0).strip() for m in re.finditer(fig_re, text)]
    tables = [m.group(0).strip() for m in re.finditer(r"(?m)^\**Table\s*\d+[.:].*$", text)]
    refs: list[str] = []
    for s in sections:
        if s.kind == "references":
            refs += [ln.strip("-* ").strip() for ln in s.text.splitlines() if ln.strip()]
    return Paper(title=title, abstract=abstract, sections=sections, equations=equations,
                 figures=figures, tables=tables, references=refs, source=source,
                 source_format=source_format)
