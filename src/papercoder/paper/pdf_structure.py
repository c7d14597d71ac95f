"""From laid-out PDF lines to a Paper: title, abstract, headings, paragraphs, captions,
display equations and the reference list.

Headings come from two places. Typography: a short line set in bold or larger than the
body text, optionally numbered ("2.1.", "A.3"), standing on its own (a bold sentence that
runs on into the paragraph is not a heading). And the PDF outline when the file has one:
each entry is found on its page and marks that line as a heading of the entry's depth,
which also catches headings the typography misses.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise

from papercoder.paper.model import Paper, Section, section_kind
from papercoder.paper.pdf_layout import Layout, Line
from papercoder.paper.textutil import (
    Vocabulary,
    clean,
    hyphen_vocabulary,
    is_caption,
    join_lines,
    split_references,
)

_NUMBERED = re.compile(r"^(?P<num>(?:\d{1,2}|[A-Z]|[IVX]{2,5}(?=\.))(?:\s?\.\s?\d{1,2})*)\.?\s+"
                       r"(?P<rest>\S.*)$")
_EQ_NUMBER = re.compile(r"\(\s*[A-Z]?\d{1,3}[a-z]?\s*\)\s*$")
_SENTENCE_END = re.compile(r"[.!?:;]\)?$")


@dataclass
class OutlineEntry:
    title: str
    level: int
    page: int
    top: float | None = None
    left: float | None = None


@dataclass
class _Heading:
    lines: list[int]
    text: str
    level: int
    numbered: bool = False
    from_outline: bool = False


@dataclass
class _Block:
    kind: str  # text, equation, figure, table, grid
    lines: list[Line] = field(default_factory=list)


def _norm(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[^0-9a-z]+", "", t)


def _strip_number(text: str) -> str:
    m = _NUMBERED.match(text)
    return m.group("rest") if m else text


class _Doc:
    """The flat line list with the document-wide measures the rules need."""

    def __init__(self, lay: Layout) -> None:
        self.lay = lay
        self.lines: list[Line] = [ln for page in lay.pages for ln in page]
        for ln in self.lines:
            ln.text = clean(ln.text)
        self.body = lay.body_size
        self.spacing = self._line_spacing()
        self.edges = self._column_edges()

    def _line_spacing(self) -> float:
        gaps: Counter[float] = Counter()
        for a, b in pairwise(self.lines):
            if a.page == b.page and a.column == b.column and abs(a.size - self.body) < 0.6 \
                    and abs(b.size - self.body) < 0.6:
                d = round(a.y - b.y, 1)
                if 0.8 * self.body < d < 2.0 * self.body:
                    gaps[d] += 1
        return gaps.most_common(1)[0][0] if gaps else 1.2 * self.body

    def _column_edges(self) -> dict[tuple[int, int], tuple[float, float]]:
        """Left and right text edge of each (page, column), from its body-size lines."""
        xs: dict[tuple[int, int], list[tuple[float, float]]] = {}
        for ln in self.lines:
            if abs(ln.size - self.body) < 1.2:
                xs.setdefault((ln.page, ln.column), []).append((ln.x0, ln.x1))
        out = {}
        for k, v in xs.items():
            lefts = sorted(a for a, _ in v)
            rights = sorted(b for _, b in v)
            out[k] = (lefts[len(lefts) // 5], rights[(len(rights) * 4) // 5])
        return out

    def edge(self, ln: Line) -> tuple[float, float]:
        return self.edges.get((ln.page, ln.column), (ln.x0, ln.x1))

    def styled(self, ln: Line) -> bool:
        """Set apart like a heading: bold, larger, or in capitals / small capitals (not in
        a typewriter font: that is code)."""
        if ln.mono > 0.5:
            return False
        if (ln.bold >= 0.85 and ln.size >= self.body - 1.3) or ln.size >= self.body + 1.4:
            return True
        return self.capitals(ln)

    def capitals(self, ln: Line) -> bool:
        letters = [c for c in _strip_number(ln.text) if c.isalpha()]
        numbered = _numbered_depth(ln.text) > 0
        return (len(letters) >= (2 if numbered else 4) and all(c.isupper() for c in letters)
                and len(ln.text) <= 80 and (numbered or ln.size >= self.body - 0.5))

    def same_flow(self, a: Line, b: Line) -> bool:
        return a.page == b.page and a.column == b.column


# -- title ------------------------------------------------------------------------------------
def _title(doc: _Doc, meta_title: str) -> tuple[str, set[int]]:
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


def _drop_title_headers(doc: _Doc, title: str, keep: set[int]) -> None:
    """The title repeated at the top or bottom of later pages is a running header, even in
    a paper too short for the repetition rule."""
    want = re.sub(r"\d+", "", _norm(title))
    if len(want) < 8:
        return
    h = doc.lay.height
    out = []
    for i, ln in enumerate(doc.lines):
        edge = ln.y > 0.9 * h or ln.y < 0.1 * h
        if i not in keep and ln.page > 0 and edge and re.sub(r"\d+", "", _norm(ln.text)) == want:
            continue
        out.append(ln)
    if len(out) != len(doc.lines):
        # Indices shift: the title lines are at the start of page 0 and keep their place.
        doc.lines = out


# -- headings ---------------------------------------------------------------------------------
def _numbered_depth(text: str) -> int:
    m = _NUMBERED.match(text)
    if not m:
        return 0
    rest = m.group("rest")
    if not rest[0].isupper():
        return 0
    return len(re.split(r"\s?\.\s?", m.group("num")))


def _font_headings(doc: _Doc, skip: set[int]) -> list[_Heading]:
    lines = doc.lines
    out: list[_Heading] = []
    i = 0
    while i < len(lines):
        ln = lines[i]
        if i in skip or not doc.styled(ln) or ln.math > 0.3:
            i += 1
            continue
        group = [i]
        j = i + 1
        while j < len(lines) and j not in skip:
            nx, prev = lines[j], lines[group[-1]]
            if not (doc.same_flow(prev, nx) and doc.styled(nx) and abs(nx.size - prev.size) < 0.4
                    and 0 < prev.y - nx.y <= 1.6 * prev.size and not _numbered_depth(nx.text)
                    and len(group) < 3):
                break
            group.append(j)
            j += 1
        if _valid_heading(doc, group):
            text = " ".join(lines[k].text for k in group)
            depth = _numbered_depth(text)
            out.append(_Heading(lines=group, text=text, level=depth, numbered=depth > 0))
        i = j
    _assign_levels(doc, out)
    return out


def _valid_heading(doc: _Doc, group: list[int]) -> bool:
    lines = doc.lines
    text = " ".join(lines[k].text for k in group).strip()
    if not (2 <= len(text) <= 160) or not any(c.isalpha() for c in text):
        return False
    if is_caption(text):
        return False
    depth = _numbered_depth(text)
    first = _strip_number(text).lstrip("([\"'“")
    if not first or not (first[0].isupper() or first[0].isdigit()):
        return False
    if not depth and re.search(r"[.,;:]$", text):
        return False  # a bold sentence or a label, not a heading
    head = lines[group[0]]
    prev = lines[group[0] - 1] if group[0] > 0 else None
    if not depth and head.bold < 0.85 and head.size < doc.body + 1.4 and prev is not None \
            and doc.same_flow(prev, head) \
            and prev.y - head.y <= 1.3 * doc.spacing * head.size / doc.body:
        return False  # capitals inside running text (an acronym on its own line)
    if re.match(r"^[\d.\s%,]+$", text) or re.match(r"^\d+[:)]", text):
        return False  # numbers, or a numbered algorithm line
    if not re.search(r"[^\W\d_]{3}", _strip_number(text)):
        return False  # "T M": table header cells, symbols
    if _numbers(_strip_number(text)) >= 3:
        return False  # a row of numbers
    last = lines[group[-1]]
    nxt = lines[group[-1] + 1] if group[-1] + 1 < len(lines) else None
    left, right = doc.edge(last)
    width = max(right - left, 1.0)
    # A bold line that fills the column and runs straight on into regular text is the
    # start of a paragraph.
    if nxt is not None and doc.same_flow(last, nxt) and not doc.styled(nxt) \
            and 0 < last.y - nxt.y <= 1.25 * doc.spacing * last.size / doc.body \
            and last.x1 > right - 0.08 * width and not depth:
        return False
    # Table headers and figure labels: bold text sharing its line with other cells.
    if lines[group[0]].segments > 2:
        return False
    if not depth and _looks_tabular(doc, group):
        return False
    return True


def _numbers(text: str) -> int:
    return sum(1 for t in text.split()
               if any(c.isdigit() for c in t) and re.fullmatch(r"[\d.,%±()+\-−/×x]+", t))


def _looks_tabular(doc: _Doc, group: list[int]) -> bool:
    """A bold header row of a table: numbers in it, rows of numbers below, or a table
    caption right above."""
    lines = doc.lines
    head = lines[group[0]]
    if _numbers(head.text) >= 2:
        return True
    below = [lines[k] for k in range(group[-1] + 1, min(group[-1] + 3, len(lines)))
             if doc.same_flow(lines[k], head)]
    if len(below) == 2 and all(_numbers(ln.text) >= max(1, len(ln.text.split()) * 0.3)
                               or _numbers(ln.text.split()[-1]) for ln in below):
        return True
    above = [lines[k] for k in range(max(group[0] - 2, 0), group[0])
             if lines[k].page == head.page]
    return any(is_caption(ln.text) == "table" for ln in above)


def _assign_levels(doc: _Doc, heads: list[_Heading]) -> None:
    by_depth: dict[int, list[float]] = {}
    for h in heads:
        if h.numbered:
            by_depth.setdefault(h.level, []).append(doc.lines[h.lines[0]].size)
    size_of = {d: sorted(v)[len(v) // 2] for d, v in by_depth.items()}
    sizes = sorted({round(doc.lines[h.lines[0]].size, 1) for h in heads}, reverse=True)
    for h in heads:
        if h.numbered:
            continue
        s = doc.lines[h.lines[0]].size
        if size_of:
            h.level = min(size_of, key=lambda d: (abs(size_of[d] - s), d))
        else:
            h.level = 1 + min(sizes.index(round(s, 1)), 2) if sizes else 1


def _outline_headings(doc: _Doc, outline: list[OutlineEntry], skip: set[int]
                      ) -> list[_Heading]:
    by_page: dict[int, list[int]] = {}
    for i, ln in enumerate(doc.lines):
        by_page.setdefault(ln.page, []).append(i)
    out: list[_Heading] = []
    used: set[int] = set()
    for e in outline:
        want = _norm(e.title)
        if not want:
            continue
        best: tuple[float, list[int]] | None = None
        for page in (e.page, e.page + 1):
            for i in by_page.get(page, []):
                if i in skip or i in used:
                    continue
                ln = doc.lines[i]
                have = _norm(_strip_number(ln.text))
                group = [i]
                if have != want and _norm(ln.text) != want:
                    if not (have and want.startswith(have) and len(have) >= 3):
                        continue
                    # A heading broken over lines: take the following lines while they fit.
                    acc = have
                    k = i + 1
                    while k < len(doc.lines) and len(acc) < len(want) and k - i < 4:
                        acc += _norm(doc.lines[k].text)
                        group.append(k)
                        k += 1
                    if acc != want:
                        continue
                dist = 0.0 if e.top is None or page != e.page else abs(e.top - ln.y)
                if page != e.page:
                    dist = 1000.0 + (doc.lay.height - ln.y)
                if e.top is not None and page == e.page and ln.y > e.top + 2 * ln.size:
                    dist += 500.0  # above the destination: an earlier mention
                if best is None or dist < best[0]:
                    best = (dist, group)
            if best is not None:
                break
        if best is None:
            continue
        group = best[1]
        used.update(group)
        text = " ".join(doc.lines[k].text for k in group)
        out.append(_Heading(lines=group, text=text, level=e.level,
                            numbered=_numbered_depth(text) > 0, from_outline=True))
    return out


def _merge_headings(font: list[_Heading], outline: list[_Heading]) -> list[_Heading]:
    if not outline:
        return font
    taken = {k for h in outline for k in h.lines}
    merged = list(outline)
    out_depth = max(h.level for h in outline)
    for h in font:
        if taken.intersection(h.lines):
            continue
        if h.numbered:
            h.level = max(h.level, 1)
        else:
            h.level = min(h.level, out_depth)
        merged.append(h)
    return sorted(merged, key=lambda h: h.lines[0])


def _drop_front_matter(doc: _Doc, heads: list[_Heading]) -> list[_Heading]:
    """Bold author names and affiliations on the first page are not headings: keep
    first-page headings only from the abstract, the first numbered or outline heading on."""
    start = next((k for k, h in enumerate(heads) if h.numbered or h.from_outline
                  or _norm(h.text) in ("abstract", "introduction")), None)
    if start is None:
        return heads
    return [h for k, h in enumerate(heads) if k >= start or doc.lines[h.lines[0]].page > 0]


# -- paragraphs -------------------------------------------------------------------------------
def _is_equation(doc: _Doc, ln: Line) -> bool:
    t = ln.text
    if ln.math >= 0.45 and len(t) < 200:
        return True
    left, right = doc.edge(ln)
    centred = ln.x0 > left + 0.08 * (right - left)
    return bool(_EQ_NUMBER.search(t)) and ln.math >= 0.1 and centred


def _looks_like_equation(text: str) -> bool:
    t = text.strip()
    return len(t) >= 4 and (bool(_EQ_NUMBER.search(t)) or bool(re.search(r"[=≤≥≈∝<>∈→≜≡]", t)))


def _stray_mark(doc: _Doc, ln: Line) -> bool:
    """A footnote mark or symbol left on a line of its own."""
    return ln.size < 0.8 * doc.body and len(ln.text) <= 3 and not re.search(r"[A-Za-z]{2}", ln.text)


def _blocks(doc: _Doc, lines: list[Line]) -> list[_Block]:
    blocks: list[_Block] = []
    lines = [ln for ln in lines if not _stray_mark(doc, ln)]
    for ln in lines:
        eq = _is_equation(doc, ln)
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
        if b.kind == "text" and len(b.lines) >= 2 and \
                sum(1 for ln in b.lines if ln.segments >= 3) >= len(b.lines) / 2:
            b.kind = "grid"
    return blocks


def _block_text(b: _Block, vocab: Vocabulary) -> str:
    if b.kind in ("grid", "equation"):
        return "\n".join(ln.text for ln in b.lines)
    return join_lines([ln.text for ln in b.lines], vocab)


# -- the paper --------------------------------------------------------------------------------
def build_paper(lay: Layout, outline: list[OutlineEntry], *, meta_title: str = "") -> Paper:
    doc = _Doc(lay)
    title, title_idx = _title(doc, meta_title)
    _drop_title_headers(doc, title, title_idx)
    lines = doc.lines
    heads = _merge_headings(_font_headings(doc, title_idx),
                            _outline_headings(doc, outline, title_idx))
    heads = _drop_front_matter(doc, heads)
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

    spans: list[tuple[_Heading | None, list[Line]]] = []
    cur: _Heading | None = None
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

    if front:
        fblocks = _blocks(doc, front)
        long = [b for b in fblocks if b.kind == "text" and len(b.lines) >= 4]
        for b in long:
            t = _block_text(b, vocab)
            if re.match(r"^\s*abstract\b", t, re.I):
                abstract = re.sub(r"^\s*abstract[\s.:—–-]*", "", t, flags=re.I)
                break
        else:
            if long and not any(_norm(h.text) == "abstract" for h in heads):
                # Without an "Abstract" heading: the longest paragraph before the first
                # heading (author blocks are shorter).
                best = max(long, key=lambda b: sum(len(ln.text) for ln in b.lines))
                abstract = _block_text(best, vocab)

    for h, body in spans:
        name = h.text.strip()
        if _norm(name) == "abstract" and not abstract:
            abstract = "\n\n".join(_block_text(b, vocab) for b in _blocks(doc, body))
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
        for b in _blocks(doc, body):
            t = _block_text(b, vocab)
            if not t.strip():
                continue
            if b.kind == "figure":
                figures.append(t)
            elif b.kind == "table":
                tables.append(t)
            elif b.kind == "equation" and _looks_like_equation(t):
                equations.append(t.replace("\n", " "))
            paras.append(t)
        sections.append(Section(heading=name, text="\n\n".join(paras), level=max(h.level, 1),
                                kind=kind))
    if not heads:
        warnings.append("No section headings were found in the PDF; the text is one section.")
        body = [ln for i, ln in enumerate(lines) if i not in title_idx]
        paras = [_block_text(b, vocab) for b in _blocks(doc, body)]
        sections = [Section(heading="Text", text="\n\n".join(p for p in paras if p.strip()))]
    return Paper(title=title, abstract=abstract, sections=sections, equations=equations,
                 tables=tables, figures=figures, references=references, warnings=warnings)


def _references(doc: _Doc, body: list[Line]) -> list[str]:
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
