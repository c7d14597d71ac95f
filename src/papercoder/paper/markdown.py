"""Markdown and plain text: headings become sections, LaTeX math is kept as written.

Markdown that came out of an OCR/PDF converter often carries LaTeX structure instead of
`#` headings (``\\title{...}``, ``\\section*{2. Method}``, ``\\begin{abstract}``); those are
read as headings too.
"""

from __future__ import annotations

import re

from papercoder.paper.model import Paper, Section, section_kind

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\begin\{(equation|align|gather|"
                           r"multline|eqnarray)(\*?)\}(.+?)\\end\{\3\*?\}", re.S)
_FENCE = re.compile(r"^(```|~~~)")
_TEX_SECTION = re.compile(r"^\\(section|subsection|subsubsection|paragraph)\*?\{(.+)\}\s*$")
_TEX_TITLE = re.compile(r"\\title\{\s*(.+?)\s*\}", re.S)
_TEX_ABSTRACT = re.compile(r"\\begin\{abstract\}(.+?)\\end\{abstract\}", re.S)
_TEX_LEVEL = {"section": 2, "subsection": 3, "subsubsection": 4, "paragraph": 5}


def _latex_structure(text: str) -> str:
    """Turn \\title, \\section*{...} and the abstract environment into Markdown headings."""
    if not re.search(r"^\\(sub)*section\*?\{", text, re.M):
        return text
    m = _TEX_TITLE.search(text)
    if m:
        title = re.sub(r"\s+", " ", m.group(1))
        text = text[:m.start()] + f"# {title}\n" + text[m.end():]
    text = _TEX_ABSTRACT.sub(lambda a: "## Abstract\n\n" + a.group(1).strip() + "\n", text)
    lines = []
    for line in text.splitlines():
        s = _TEX_SECTION.match(line.strip())
        if s:
            lines.append("#" * _TEX_LEVEL[s.group(1)] + " " + s.group(2).strip())
        else:
            lines.append(line)
    return "\n".join(lines)


def parse_markdown(text: str, *, source: str = "", source_format: str = "markdown") -> Paper:
    text = _latex_structure(text.replace("\r\n", "\n"))
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
    _mark_appendices(sections)
    equations = []
    for m in _DISPLAY_MATH.finditer(text):
        if m.group(3):
            env = m.group(3) + m.group(4)
            body = m.group(5).strip()
            equations.append(body if m.group(3) == "equation"
                             else f"\\begin{{{env}}}\n{body}\n\\end{{{env}}}")
        else:
            equations.append((m.group(1) or m.group(2)).strip())
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


def _mark_appendices(sections: list[Section]) -> None:
    """Sections after the references with letter numbers ("A.", "B.2") are appendices."""
    after = False
    for s in sections:
        if s.kind == "references":
            after = True
        elif after and s.kind == "body" and re.match(r"^[A-Z](\.\d+)*\.?\s", s.heading):
            s.kind = "appendix"
