"""Headings in a laid-out PDF: from typography (bold, larger, capitals, numbered) and
from the PDF outline, merged; plus the document-wide measures (body size, line spacing,
column edges) the rules use."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

from papercoder.paper.pdf_layout import Layout, Line
from papercoder.paper.textutil import clean, is_caption

_NUMBERED = re.compile(r"^(?P<num>(?:\d{1,2}|[A-Z]|[IVX]{2,5}(?=\.))(?:\s?\.\s?\d{1,2})*)\.?\s+"
                       r"(?P<rest>\S.*)$")


@dataclass
class OutlineEntry:
    title: str
    level: int
    page: int
    top: float | None = None
    left: float | None = None


@dataclass
class Heading:
    lines: list[int]
    text: str
    level: int
    numbered: bool = False
    from_outline: bool = False


def norm(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[^0-9a-z]+", "", t)


def strip_number(text: str) -> str:
    m = _NUMBERED.match(text)
    return m.group("rest") if m else text


class Doc:
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
        letters = [c for c in strip_number(ln.text) if c.isalpha()]
        numbered = numbered_depth(ln.text) > 0
        return (len(letters) >= (2 if numbered else 4) and all(c.isupper() for c in letters)
                and len(ln.text) <= 80 and (numbered or ln.size >= self.body - 0.5))

    def same_flow(self, a: Line, b: Line) -> bool:
        return a.page == b.page and a.column == b.column


# -- headings ---------------------------------------------------------------------------------
def numbered_depth(text: str) -> int:
    m = _NUMBERED.match(text)
    if not m:
        return 0
    rest = m.group("rest")
    if not rest[0].isupper():
        return 0
    return len(re.split(r"\s?\.\s?", m.group("num")))


def font_headings(doc: Doc, skip: set[int]) -> list[Heading]:
    lines = doc.lines
    out: list[Heading] = []
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
                    and 0 < prev.y - nx.y <= 1.6 * prev.size and not numbered_depth(nx.text)
                    and len(group) < 3):
                break
            group.append(j)
            j += 1
        if _valid_heading(doc, group):
            text = " ".join(lines[k].text for k in group)
            depth = numbered_depth(text)
            out.append(Heading(lines=group, text=text, level=depth, numbered=depth > 0))
        i = j
    _assign_levels(doc, out)
    return out


def _valid_heading(doc: Doc, group: list[int]) -> bool:
    lines = doc.lines
    text = " ".join(lines[k].text for k in group).strip()
    if not (2 <= len(text) <= 160) or not any(c.isalpha() for c in text):
        return False
    if is_caption(text):
        return False
    depth = numbered_depth(text)
    first = strip_number(text).lstrip("([\"'“")
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
    if not re.search(r"[^\W\d_]{3}", strip_number(text)):
        return False  # "T M": table header cells, symbols
    if _numbers(strip_number(text)) >= 3:
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


def _looks_tabular(doc: Doc, group: list[int]) -> bool:
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


def _assign_levels(doc: Doc, heads: list[Heading]) -> None:
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


def outline_headings(doc: Doc, outline: list[OutlineEntry], skip: set[int]
                      ) -> list[Heading]:
    by_page: dict[int, list[int]] = {}
    for i, ln in enumerate(doc.lines):
        by_page.setdefault(ln.page, []).append(i)
    out: list[Heading] = []
    used: set[int] = set()
    for e in outline:
        want = norm(e.title)
        if not want:
            continue
        best: tuple[float, list[int]] | None = None
        for page in (e.page, e.page + 1):
            for i in by_page.get(page, []):
                if i in skip or i in used:
                    continue
                ln = doc.lines[i]
                have = norm(strip_number(ln.text))
                group = [i]
                if have != want and norm(ln.text) != want:
                    if not (have and want.startswith(have) and len(have) >= 3):
                        continue
                    # A heading broken over lines: take the following lines while they fit.
                    acc = have
                    k = i + 1
                    while k < len(doc.lines) and len(acc) < len(want) and k - i < 4:
                        acc += norm(doc.lines[k].text)
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
        out.append(Heading(lines=group, text=text, level=e.level,
                            numbered=numbered_depth(text) > 0, from_outline=True))
    return out


def merge_headings(font: list[Heading], outline: list[Heading]) -> list[Heading]:
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


def drop_front_matter(doc: Doc, heads: list[Heading]) -> list[Heading]:
    """Bold author names and affiliations on the first page are not headings: keep
    first-page headings only from the abstract, the first numbered or outline heading on."""
    start = next((k for k, h in enumerate(heads) if h.numbered or h.from_outline
                  or norm(h.text) in ("abstract", "introduction")), None)
    if start is None:
        return heads
    return [h for k, h in enumerate(heads) if k >= start or doc.lines[h.lines[0]].page > 0]
