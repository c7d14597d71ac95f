"""From laid-out PDF lines to a Paper: title, abstract, sections (headings come from
``pdf_headings``), paragraphs with end-of-line hyphens undone, captions, display equations
and the reference list."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from papercoder.paper.model import Paper, Section, section_kind
from papercoder.paper.pdf_headings import (
    Doc,
    Heading,
    OutlineEntry,
    drop_front_matter,
    font_headings,
    merge_headings,
    norm,
    outline_headings,
)
from papercoder.paper.pdf_layout import Layout, Line
from papercoder.paper.pdf_math import display_latex
from papercoder.paper.pdf_pages import PageFindings, display_equations, split_transcript
from papercoder.paper.textutil import (
    Vocabulary,
    hyphen_vocabulary,
    is_caption,
    join_lines,
    split_references,
)

_EQ_NUMBER = re.compile(r"\(\s*[A-Z]?\d{1,3}[a-z]?\s*\)\s*$")
_SENTENCE_END = re.compile(r"[.!?:;]\)?$")


@dataclass
class _Block:
    kind: str  # text, equation, figure, table, grid, algorithm
    lines: list[Line] = field(default_factory=list)


# -- title ------------------------------------------------------------------------------------
def _title(doc: Doc, meta_title: str) -> tuple[str, set[int]]:
    first = [i for i, ln in enumerate(doc.lines) if ln.page == 0]
    if not first:
        return meta_title or "Untitled", set()
    top_half = [i for i in first if doc.lines[i].y > doc.lay.height * 0.45] or first
    biggest = max(doc.lines[i].size for i in top_half)
    if biggest >= doc.body + 1.5:
        idx = [i for i in top_half if abs(doc.lines[i].size - biggest) < 0.3]
        # Only the first run of consecutive title-size lines.
        run = [idx[0]]
        for i in idx[1:]:
            if i == run[-1] + 1:
                run.append(i)
            else:
                break
        text = " ".join(doc.lines[i].text for i in run)
        if 3 <= len(text) <= 300:
            return text, set(run)
    if meta_title and len(meta_title) > 3:
        return meta_title, set()
    return (doc.lines[first[0]].text[:200] if first else "Untitled"), set()


def _drop_title_headers(doc: Doc, title: str, keep: set[int]) -> None:
    """The title repeated at the top or bottom of later pages is a running header, even in
    a paper too short for the repetition rule."""
    want = re.sub(r"\d+", "", norm(title))
    if len(want) < 8:
        return
    h = doc.lay.height
    out = []
    for i, ln in enumerate(doc.lines):
        edge = ln.y > 0.9 * h or ln.y < 0.1 * h
        if i not in keep and ln.page > 0 and edge and re.sub(r"\d+", "", norm(ln.text)) == want:
            continue
        out.append(ln)
    if len(out) != len(doc.lines):
        # Indices shift: the title lines are at the start of page 0 and keep their place.
        doc.lines = out


# -- paragraphs -------------------------------------------------------------------------------
_CHECKS = set("✓✗✔✘☑☒")
_TABLE_MARKS = _CHECKS | set("⇑⇓↑↓⇧⇩")


def _table_marks(text: str) -> bool:
    """A row of a table's check marks and arrows ("✗ ✓ ⇑High ⇓Low = ="), not maths: check
    marks never stand in an equation, and arrows only with words and "=" beside them."""
    if any(ch in _CHECKS for ch in text):
        return True
    marks = sum(ch in _TABLE_MARKS for ch in text)
    rest = re.sub(r"[=\s_{}]|[A-Za-z]+", "", "".join(ch for ch in text
                                                     if ch not in _TABLE_MARKS))
    return marks >= 2 and not rest


def _is_equation(doc: Doc, ln: Line) -> bool:
    t = ln.text
    if _table_marks(t):
        return False
    if ln.math >= 0.45 and len(t) < 200:
        return True
    left, right = doc.edge(ln)
    centred = ln.x0 > left + 0.08 * (right - left)
    if not (_EQ_NUMBER.search(t) and ln.math >= 0.1):
        return False
    if centred:
        return True
    # Flush left, but the number stands apart at the right: a wide display equation.
    runs = sorted(ln.runs, key=lambda r: r.x0)
    return len(runs) >= 2 and _EQ_NUMBER.fullmatch(runs[-1].text.strip()) is not None and \
        runs[-1].x0 - max(r.x1 for r in runs[:-1]) > 1.0 * ln.size


def _looks_like_equation(text: str) -> bool:
    t = text.strip()
    return len(t) >= 4 and (bool(_EQ_NUMBER.search(t)) or bool(re.search(r"[=≤≥≈∝<>∈→≜≡]", t)))


def _stray_mark(doc: Doc, ln: Line) -> bool:
    """A footnote mark or symbol left on a line of its own."""
    return ln.size < 0.8 * doc.body and len(ln.text) <= 3 and not re.search(r"[A-Za-z]{2}", ln.text)


_PROSE_WORD = re.compile(r"[A-Za-z]{4,}")
_MATH_WORDS = {"log", "exp", "max", "min", "argmax", "argmin", "sup", "inf", "lim", "softmax",
               "diag", "where", "subject"}


def _satellite(doc: Doc, ln: Line) -> bool:
    """A short piece of a display equation on a line of its own: a numerator, a limit of a
    sum, a stacked script ("1", "i=1", "T", "2 0")."""
    t = ln.text.strip()
    if not t:
        return False
    words = [w for w in _PROSE_WORD.findall(t) if w.lower() not in _MATH_WORDS]
    if len(t) > 24:
        # A longer line of pure maths: the numerators of fractions side by side.
        return len(t) <= 120 and ln.math >= 0.3 and not words
    if ln.size < 0.85 * doc.body or ln.math >= 0.3:
        return True  # a script or limit set small, or maths ("TSNPSE-DSM" over a J)
    return not words


def _equation_flags(doc: Doc, lines: list[Line]) -> list[bool]:
    """Which lines belong to display equations: equation lines, and the short pieces stacked
    right above or below them in the same column."""
    # A line set small on its own (a raised or lowered piece of inline maths, a footnote
    # mark) is part of an equation only next to one.
    flags = [_is_equation(doc, ln) and not _stray_mark(doc, ln)
             and (ln.size >= 0.85 * doc.body or len(ln.text.strip()) >= 12) for ln in lines]
    changed = True
    while changed:
        changed = False
        for i, ln in enumerate(lines):
            if flags[i] or not _satellite(doc, ln) or _table_marks(ln.text):
                continue
            for j in (i - 1, i + 1):
                if 0 <= j < len(lines) and flags[j]:
                    other = lines[j]
                    if other.page == ln.page and other.column == ln.column and \
                            abs(other.y - ln.y) < 1.6 * doc.spacing * max(1.0, ln.size /
                                                                          doc.body):
                        flags[i] = changed = True
                        break
    return flags


_ALGORITHM = re.compile(r"^\s*(\*\*)?Algorithm\s+\d+\b")
_STEP = re.compile(r"^\s*(\d{1,3})\s*:\s*")


def _algorithm_end(doc: Doc, lines: list[Line], i: int) -> int:
    """Where the algorithm box whose title is lines[i] ends (exclusive): at the box's bottom
    rule when it has one, else after the last numbered step and its continuation lines."""
    title = lines[i]
    rules = doc.lay.rules[title.page] if title.page < len(doc.lay.rules) else []
    left, right = doc.edge(title)
    width = max(right - left, 1.0)
    frame = sorted((r.y for r in rules if r.y < title.y - 1.8 * doc.spacing
                    and r.x0 <= title.x0 + 0.1 * width and r.x1 - r.x0 > 0.6 * width),
                   reverse=True)
    bottom = frame[0] if frame else None
    j = i + 1
    last_step = i
    while j < len(lines):
        ln = lines[j]
        if ln.page != title.page or ln.column != title.column:
            break
        if bottom is not None:
            if ln.y < bottom:
                break
        else:
            if ln.y < lines[j - 1].y - 2.2 * doc.spacing or is_caption(ln.text):
                break
            if _STEP.match(ln.text):
                last_step = j
            elif j > last_step + 3:
                break
        j += 1
    return j if bottom is not None else max(last_step + 1, i + 1)


def _algorithm_text(doc: Doc, b: _Block) -> str:
    """An algorithm box as a fenced block: one line per step, indented as set; a step's
    stacked maths (sums with limits, fractions) is put back on its line."""
    page = b.lines[0].page
    rules = doc.lay.rules[page] if page < len(doc.lay.rules) else []
    groups: list[list[Line]] = []
    pending: list[Line] = []  # stacked pieces waiting for the nearest step
    lines = b.lines
    for k, ln in enumerate(lines):
        if not _STEP.match(ln.text) and _satellite(doc, ln) and groups and \
                _STEP.match(groups[-1][0].text):
            nxt = next((x for x in lines[k + 1:] if _STEP.match(x.text)), None)
            prev = groups[-1][0]
            top = max((r.y for r in ln.runs), default=ln.y)
            if nxt is not None and abs(top - nxt.y) < abs(prev.y - ln.y):
                pending.append(ln)
            else:
                groups[-1].append(ln)
            continue
        groups.append([ln, *pending] if _STEP.match(ln.text) else [*pending, ln])
        pending = []
    if pending:
        groups.append(pending)
    steps: list[tuple[str, float | None, str]] = []
    for g in groups:
        ln = g[0]
        m = _STEP.match(ln.text)
        text = ln.text
        if len(g) > 1:
            try:
                rows = display_latex([r for x in g for r in x.runs], rules)
            except Exception:  # noqa: BLE001 - odd geometry keeps the plain lines
                rows = []
            text = " ".join(rows) if rows else " ".join(x.text for x in g)
        if m:
            runs = sorted(ln.runs, key=lambda r: r.x0)
            after = [r for r in runs if r.text.strip() not in (m.group(1), m.group(1) + ":",
                                                                 ":")]
            x = after[0].x0 if after else ln.x0
            body = _STEP.sub("", text, count=1)
            steps.append((m.group(1) + ":", x, body))
        else:
            steps.append(("", ln.x0, text))
    numbered = any(n for n, _, _ in steps)
    xs = [x for n, x, _ in steps[1:] if x is not None and (bool(n) or not numbered)]
    base = min(xs) if xs else 0.0
    em = b.lines[0].size or 10.0
    out = []
    for k, (n, step_x, t) in enumerate(steps):
        level = 0
        if k and (n or not numbered):
            level = max(0, round(((step_x or base) - base) / em))
        out.append((n + " " if n else "    ") + "  " * level + t.strip())
    return "```\n" + "\n".join(out) + "\n```"


def _blocks(doc: Doc, lines: list[Line]) -> list[_Block]:
    # Algorithm boxes first: one block each, whatever their lines look like.
    out: list[_Block] = []
    start = 0
    i = 0
    while i < len(lines):
        if _ALGORITHM.match(lines[i].text) and (
                lines[i].bold >= 0.3 or i + 1 < len(lines) and _STEP.match(lines[i + 1].text)):
            end = _algorithm_end(doc, lines, i)
            out += _plain_blocks(doc, lines[start:i])
            out.append(_Block(kind="algorithm", lines=lines[i:end]))
            start = i = end
            continue
        i += 1
    if start == 0:
        return _plain_blocks(doc, lines)
    return out + _plain_blocks(doc, lines[start:])


def _plain_blocks(doc: Doc, lines: list[Line]) -> list[_Block]:
    blocks: list[_Block] = []
    flags = _equation_flags(doc, lines)
    kept = [(ln, f) for ln, f in zip(lines, flags, strict=True)
            if f or not _stray_mark(doc, ln)]
    for ln, eq in kept:
        cap = is_caption(ln.text)
        prev_block = blocks[-1] if blocks else None
        prev = prev_block.lines[-1] if prev_block else None
        kind = "equation" if eq else "text"
        new = prev is None or bool(cap)
        if prev is not None and not new and prev_block is not None:
            if prev_block.kind == "equation" and not eq:
                new = True
            elif prev_block.kind != "equation" and eq:
                new = True
            elif not doc.same_flow(prev, ln):
                # Column or page break: a paragraph may continue in the next column.
                new = bool(_SENTENCE_END.search(prev.text)) or not (
                    ln.text[:1].islower() or prev.text.endswith("-"))
                new = new or abs(ln.size - prev.size) > 0.8
            else:
                gap = prev.y - ln.y
                normal = doc.spacing * max(ln.size, prev.size) / doc.body
                if gap > 1.3 * normal or gap < -0.5 * normal:
                    new = True
                elif abs(ln.size - prev.size) > 0.8 and prev_block.kind == "text":
                    new = True
        if new:
            blocks.append(_Block(kind=cap or kind, lines=[ln]))
        else:
            assert prev_block is not None
            prev_block.lines.append(ln)
    for b in blocks:
        if b.kind == "text" and len(b.lines) >= 2 and (
                sum(1 for ln in b.lines if ln.segments >= 3) >= len(b.lines) / 2
                or sum(1 for ln in b.lines if _numeric_row(ln.text)) >= 0.6 * len(b.lines)):
            b.kind = "grid"
    return blocks


def _numeric_row(text: str) -> bool:
    """A table row: several numbers and little prose."""
    tokens = text.split()
    nums = sum(1 for t in tokens if re.fullmatch(r"[-+±]?[\d.,]+%?|[\d.]+/[\d./]+|-", t))
    return nums >= 2 and nums >= 0.4 * len(tokens)


def _block_text(b: _Block, vocab: Vocabulary, doc: Doc | None = None) -> str:
    if b.kind == "equation" and doc is not None:
        return _equation_text(doc, b)
    if b.kind == "algorithm" and doc is not None:
        return _algorithm_text(doc, b)
    if b.kind in ("grid", "equation"):
        return "\n".join(ln.text for ln in b.lines)
    return join_lines([ln.text for ln in b.lines], vocab)


def _equation_text(doc: Doc, b: _Block) -> str:
    """A display equation as linear LaTeX between $$ lines, one row per line; the plain
    lines when the geometry gives nothing."""
    page = b.lines[0].page
    rules = doc.lay.rules[page] if page < len(doc.lay.rules) else []
    runs = [r for ln in b.lines for r in ln.runs]
    try:
        rows = display_latex(runs, rules)
    except Exception:  # noqa: BLE001 - odd geometry must not cost the text
        rows = []
    if not rows:
        return "\n".join(ln.text for ln in b.lines)
    return "$$\n" + "\n".join(rows) + "\n$$"


# -- the paper --------------------------------------------------------------------------------
def build_paper(lay: Layout, outline: list[OutlineEntry], *, meta_title: str = "",
                pages: Mapping[int, str] | None = None,
                found: PageFindings | None = None) -> Paper:
    """The Paper of a laid-out PDF. ``pages`` maps 0-based page numbers to Markdown
    transcriptions that replace the text of those pages (see :func:`_page_pieces`);
    ``found``, when given, is filled with what was found per page and what was spliced."""
    found = found if found is not None else PageFindings()
    found.pages = len(lay.pages)
    doc = Doc(lay)
    title, title_idx = _title(doc, meta_title)
    _drop_title_headers(doc, title, title_idx)
    lines = doc.lines
    heads = merge_headings(font_headings(doc, title_idx),
                            outline_headings(doc, outline, title_idx))
    heads = drop_front_matter(doc, heads)
    vocab = hyphen_vocabulary(ln.text for ln in lines)
    warnings: list[str] = []

    head_at = {h.lines[0]: h for h in heads}
    in_head = {k for h in heads for k in h.lines}
    # Front matter (authors, affiliations) runs from the title to the first heading.
    first_head = min(head_at) if head_at else len(lines)
    abstract = ""
    sections: list[Section] = []
    figures: list[str] = []
    tables: list[str] = []
    equations: list[str] = []
    references: list[str] = []
    after_refs = False

    spans: list[tuple[Heading | None, list[Line]]] = []
    cur: Heading | None = None
    buf: list[Line] = []
    front: list[Line] = []
    for i, ln in enumerate(lines):
        if i in title_idx:
            continue
        if i in head_at:
            if cur is not None:
                spans.append((cur, buf))
            cur, buf = head_at[i], []
            continue
        if i in in_head:
            continue
        if i < first_head:
            front.append(ln)
        else:
            buf.append(ln)
    if cur is not None:
        spans.append((cur, buf))
    if not heads:
        spans = [(None, [ln for i, ln in enumerate(lines) if i not in title_idx])]
    pieces = _page_pieces(doc, spans, dict(pages or {}), found)
    replaced = set(found.spliced)

    if front:
        fblocks = _blocks(doc, front)
        long = [b for b in fblocks if b.kind == "text" and len(b.lines) >= 4]
        for b in long:
            t = _block_text(b, vocab)
            if re.match(r"^\s*abstract\b", t, re.I):
                abstract = re.sub(r"^\s*abstract[\s.:—–-]*", "", t, flags=re.I)
                break
        else:
            if long and not any(norm(h.text) == "abstract" for h in heads):
                # Without an "Abstract" heading: the longest paragraph before the first
                # heading (author blocks are shorter).
                best = max(long, key=lambda b: sum(len(ln.text) for ln in b.lines))
                abstract = _block_text(best, vocab)

    def texts(k: int, body: list[Line]) -> list[tuple[str, str]]:
        """(block kind, text) of a span in reading order: the default reader's blocks, with
        the lines of transcribed pages replaced by their pieces."""
        mine = sorted((p, t) for (kk, p), t in pieces.items() if kk == k)
        out: list[tuple[str, str]] = []
        run: list[Line] = []

        def flush() -> None:
            for b in _blocks(doc, run):
                t = _block_text(b, vocab, doc)
                if not t.strip():
                    continue
                if b.kind == "equation" and _looks_like_equation(t):
                    found.equations.add(b.lines[0].page)
                if b.kind == "algorithm":
                    found.algorithms.add(b.lines[0].page)
                out.append((b.kind, t))
            run.clear()

        for ln in body:
            while mine and ln.page >= mine[0][0]:
                flush()
                out.append(("transcribed", mine.pop(0)[1]))
            if ln.page not in replaced:
                run.append(ln)
        flush()
        out += [("transcribed", t) for _, t in mine]
        return [(kind, t) for kind, t in out if t.strip()]

    for k, (h, body) in enumerate(spans):
        if h is None:
            tx = texts(k, body)
            equations += [e for kind, t in tx if kind == "transcribed"
                          for e in display_equations(t)]
            sections = [Section(heading="Text", text="\n\n".join(t for _, t in tx))]
            break
        name = h.text.strip()
        if norm(name) == "abstract" and not abstract:
            abstract = "\n\n".join(t for _, t in texts(k, body))
            continue
        kind = section_kind(name)
        if kind == "references":
            entries = _references(doc, body)
            references += entries
            sections.append(Section(heading=name, level=max(h.level, 1), kind="references",
                                    text="\n".join(f"- {e}" for e in entries)))
            after_refs = True
            continue
        if after_refs and kind == "body":
            kind = "appendix"
        if kind == "body" and re.match(r"^(appendix|appendices)\b", name, re.I):
            kind = "appendix"
        paras: list[str] = []
        for bkind, t in texts(k, body):
            if bkind == "figure":
                figures.append(t)
            elif bkind == "table":
                tables.append(t)
            elif bkind == "equation" and _looks_like_equation(t):
                eq = t.removeprefix("$$\n").removesuffix("\n$$")
                equations.append(eq.replace("\n", " "))
            elif bkind == "transcribed":
                equations += display_equations(t)
            paras.append(t)
        sections.append(Section(heading=name, text="\n\n".join(paras), level=max(h.level, 1),
                                kind=kind))
    if not heads:
        warnings.append("No section headings were found in the PDF; the text is one section.")
    return Paper(title=title, abstract=abstract, sections=sections, equations=equations,
                 tables=tables, figures=figures, references=references, warnings=warnings)


def _page_pieces(doc: Doc, spans: list[tuple[Heading | None, list[Line]]],
                 pages: dict[int, str], found: PageFindings) -> dict[tuple[int, int], str]:
    """How each transcribed page is spliced in: ``{(span index, page): Markdown}``.

    A page's transcription is cut at the section headings the default reader found on that
    page (:func:`split_transcript`): the part before the first goes to the section the page
    continues, each later part to its heading's section, in place of that page's lines.
    The default reader keeps the headings themselves, the title and front matter (a part
    before the paper's first heading is not used), and the reference list, which it splits
    into entries from the layout. A page whose headings are not all found in its
    transcription keeps its default text (``found.kept`` says why)."""
    out: dict[tuple[int, int], str] = {}
    first_line: dict[int, int] = {}
    for ln_i, ln in enumerate(doc.lines):
        first_line.setdefault(ln.page, ln_i)
    head_pos = [doc.lines[h.lines[0]].page if h is not None else -1 for h, _ in spans]
    head_idx = [h.lines[0] if h is not None else -1 for h, _ in spans]
    for page in sorted(pages):
        if not 0 <= page < len(doc.lay.pages):
            continue
        on_page = [k for k, p in enumerate(head_pos) if p == page]
        start = first_line.get(page, len(doc.lines))
        before = [k for k, i in enumerate(head_idx) if i < start and i >= 0 or
                  spans[k][0] is None]
        lead = before[-1] if before else None
        parts = split_transcript(pages[page], [h.text for k in on_page
                                               if (h := spans[k][0]) is not None])
        if parts is None:
            found.kept[page] = ("the section headings found on the page are not all in its "
                                "transcription")
            continue
        found.spliced.append(page)
        for k, part in zip([lead, *on_page], parts, strict=True):
            if k is not None and part and not _is_references(spans[k][0]):
                out[(k, page)] = part
    return out


def _is_references(h: Heading | None) -> bool:
    return h is not None and section_kind(h.text.strip()) == "references"


def _references(doc: Doc, body: list[Line]) -> list[str]:
    rows: list[tuple[str, float, bool]] = []
    prev: Line | None = None
    for ln in body:
        left, _ = doc.edge(ln)
        new_block = False
        if prev is not None and doc.same_flow(prev, ln):
            normal = doc.spacing * ln.size / doc.body
            new_block = prev.y - ln.y > 1.25 * normal
        rows.append((ln.text, ln.x0 - left, new_block))
        prev = ln
    return split_references(rows)
