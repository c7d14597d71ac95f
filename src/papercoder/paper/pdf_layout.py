"""PDF page layout: text runs (``pdf_runs``) -> lines in reading order.

Runs that share a baseline form a line (sub- and superscripts written as ^{} and _{}); a
two-column gutter is found from where the lines sit; running headers, footers, page
numbers and review line numbers are dropped; each page's lines come back in reading order
(left column, then right column, with full-width lines such as titles and wide tables kept
in place).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from papercoder.paper.pdf_runs import Fonts, Rule, Run, has_forms, page_runs

_DIGITS = re.compile(r"\d+")
_BARE_NUMBER = re.compile(r"^\s*(page\s*)?[\divxlc]{1,5}(\s*(of|/)\s*\d+)?\s*$", re.I)


@dataclass
class Line:
    """A line of one column (or a full-width line), in reading order."""

    page: int
    x0: float
    x1: float
    y: float
    size: float
    """The dominant font size of the line."""
    text: str
    bold: float
    """Share of letters set in a bold font."""
    math: float
    """Share of characters set in a math font."""
    mono: float = 0.0
    """Share of characters set in a typewriter font."""
    column: int = 0
    """0 for one-column pages and full-width lines, 1 left, 2 right."""
    segments: int = 1
    """How many horizontally separated pieces the line has (tables have several)."""
    runs: list[Run] = field(default_factory=list, repr=False)


@dataclass
class Layout:
    pages: list[list[Line]]
    width: float
    height: float
    body_size: float
    two_column_pages: int = 0
    dropped_lines: int = 0
    """Running headers, footers and page numbers removed."""
    rotated_chars: int = 0
    """Characters of rotated text left out (margin stamps, landscape tables)."""
    failed_pages: list[int] = field(default_factory=list)
    """1-based numbers of pages pypdf could not read."""
    rules: list[list[Rule]] = field(default_factory=list)
    """Thin horizontal rules per page (fraction bars, radical signs, table rules)."""
    dropped_glyphs: int = 0
    """Glyphs without a Unicode meaning (control or private-use codes) left out."""


# -- lines --------------------------------------------------------------------------------
def _bands(runs: list[Run]) -> list[list[Run]]:
    """Group runs that share a baseline (sub- and superscripts join their line)."""
    bands: list[tuple[float, float, list[Run]]] = []  # (anchor y, anchor size, runs)
    for r in sorted(runs, key=lambda r: (-r.y, r.x0)):
        if bands:
            y, s, rs = bands[-1]
            if abs(r.y - y) <= 0.45 * max(s, r.size):
                rs.append(r)
                if r.size > s + 0.5:  # re-anchor on the main text, not a superscript
                    bands[-1] = (r.y, r.size, rs)
                continue
        bands.append((r.y, r.size, [r]))
    return [rs for _, _, rs in bands]


def _join_runs(runs: list[Run], size: float, y: float) -> str:
    """Join a line's pieces left to right; raised or lowered smaller pieces that touch the
    previous one are written as ^{...} or _{...}."""
    out: list[list[str]] = []  # [kind, text] with kind "", "^" or "_"
    prev: Run | None = None
    for r in runs:
        t = r.text
        touching = prev is not None and not t.startswith(" ") and (
            r.seq == prev.seq + 1 or r.x0 - prev.x1 < 0.18 * max(r.size, prev.size))
        sep = ""
        if prev is not None and not t.startswith(" ") and not touching:
            sep = " "
        kind = ""
        if touching and r.size < 0.88 * size:
            dy = r.y - y
            kind = "^" if dy > 0.12 * size else "_" if dy < -0.08 * size else ""
        if kind and out and out[-1][0] == kind:
            out[-1][1] += t
        elif kind:
            out.append([kind, t.strip()])
        else:
            out.append(["", sep + t])
        prev = r
    text = ""
    for kind, t in out:
        if kind:
            t = t.strip()
            text += kind + (t if len(t) == 1 else "{" + t + "}")
        else:
            text += t
    return re.sub(r"\s+", " ", text).strip()


def _make_line(page: int, runs: list[Run], column: int = 0) -> Line:
    runs = sorted(runs, key=lambda r: r.x0)
    chars = Counter[float]()
    bold = letters = mathc = monoc = total = 0
    for r in runs:
        n = len(r.text.strip())
        chars[round(r.size, 1)] += n
        total += n
        if r.math:
            mathc += n
        if r.mono:
            monoc += n
        lt = sum(1 for c in r.text if c.isalpha())
        letters += lt
        if r.bold:
            bold += lt
    size = chars.most_common(1)[0][0] if chars else 10.0
    main = [r for r in runs if abs(r.size - size) < 0.6] or runs
    y = Counter(round(r.y, 1) for r in main).most_common(1)[0][0]
    gaps = sum(1 for a, b in pairwise(runs) if b.x0 - a.x1 > 1.5 * size)
    return Line(page=page, x0=runs[0].x0, x1=max(r.x1 for r in runs), y=y, size=size,
                text=_join_runs(runs, size, y), bold=bold / letters if letters else 0.0,
                math=mathc / total if total else 0.0, column=column, segments=gaps + 1,
                runs=runs, mono=monoc / total if total else 0.0)


def _crosses(r: Run, x: float) -> bool:
    return r.x0 < x - 1 and r.x1 > x + 1


def _find_gutter(bands: list[list[Run]], width: float) -> float | None:
    """The x of a two-column gutter, or None for a one-column page."""
    bands = [b for b in bands if sum(len(r.text.strip()) for r in b) > 3]
    if len(bands) < 12:
        return None
    lo, hi = int(width * 0.3), int(width * 0.7)
    cover = [0] * (hi - lo + 1)
    for b in bands:
        hit = set()
        for r in b:
            for col in range(max(lo, int(r.x0) + 2), min(hi, int(r.x1) - 1) + 1):
                hit.add(col)
        for col in hit:
            cover[col - lo] += 1
    best = min(cover)
    if best > 0.5 * len(bands):
        return None
    # The middle of the widest run of least-covered positions.
    runs: list[tuple[int, int]] = []
    start = None
    for i, c in enumerate([*cover, best + 1]):
        if c <= best and start is None:
            start = i
        elif c > best and start is not None:
            runs.append((start, i - 1))
            start = None
    first, last = max(runs, key=lambda ab: ab[1] - ab[0])
    x = lo + (first + last) / 2
    reach = 0.15 * width
    left = right = 0
    for band in bands:
        if any(_crosses(r, x) for r in band):
            continue
        if any(r.x1 <= x and r.x1 > x - reach for r in band) and \
                sum(r.x1 - r.x0 for r in band if r.x1 <= x) > 0.15 * width:
            left += 1
        if any(r.x0 >= x and r.x0 < x + reach for r in band) and \
                sum(r.x1 - r.x0 for r in band if r.x0 >= x) > 0.15 * width:
            right += 1
    if left < 5 or right < 5:
        return None
    return x


def _centred(band: list[Run], gutter: float, left_edge: float,
             right_end: float | None = None) -> bool:
    """A centred line with a gap at the gutter (an author list): not two column lines. It
    is indented about as much on the right as on the left (a centred display equation in
    the left column next to a full line of the right column is not)."""
    lr = [r for r in band if r.x1 <= gutter + 1]
    rr = [r for r in band if r.x1 > gutter + 1]
    if not lr or not rr:
        return False
    size = max(r.size for r in band)
    gap = min(r.x0 for r in rr) - max(r.x1 for r in lr)
    indent = min(r.x0 for r in lr) - left_edge
    last = max(lr, key=lambda r: r.x1).text.strip()
    if re.fullmatch(r"\(\s*[A-Z]?\d{1,3}[a-z]?\s*\)", last):
        return False  # an equation number closes the left column's line
    if right_end is not None:
        right_indent = right_end - max(r.x1 for r in rr)
        if abs(right_indent - indent) > 0.5 * indent + 2 * size:
            return False
        centre = (min(r.x0 for r in lr) + max(r.x1 for r in rr)) / 2
        if abs(centre - (left_edge + right_end) / 2) > 0.04 * (right_end - left_edge):
            return False
    return gap < 3 * size and indent > 0.25 * (gutter - left_edge)


def _wide_rows(bands: list[list[Run]], gutter: float, right_edge: float, body: float
               ) -> set[int]:
    """Rows of a full-width table on a two-column page, at least three in a row and half of
    them holding numbers: runs on both sides of the gutter, the left part stopping short of
    it, and the right part starting away from the right column's margin, or made of
    separate cells, or set smaller than the page's body text."""
    def row(b: list[Run]) -> bool:
        lr = [r for r in b if r.x1 <= gutter + 1]
        rr = [r for r in b if r.x1 > gutter + 1]
        if not lr or not rr:
            return any(_crosses(r, gutter) for r in b)
        size = max(r.size for r in b)
        if max(r.x1 for r in lr) >= gutter - 1.5 * size:
            return False  # the left part runs up to the gutter: column text
        rr.sort(key=lambda r: r.x0)
        cells = any(q.x0 - p.x1 > 1.5 * size for p, q in pairwise(rr))
        small = max(r.size for r in b) < body - 0.5
        return min(r.x0 for r in rr) > right_edge + 1.5 * size or cells or small

    flags = [row(b) for b in bands]
    for k in range(1, len(flags) - 1):  # a row label or a rule-less row between two rows
        if not flags[k] and flags[k - 1] and flags[k + 1]:
            flags[k] = True
    out: set[int] = set()
    k = 0
    while k < len(flags):
        if not flags[k]:
            k += 1
            continue
        j = k
        while j < len(flags) and flags[j]:
            j += 1
        numeric = sum(1 for b in bands[k:j] if _has_number(b))
        if j - k >= 3 and numeric >= (j - k) / 2:
            out.update(range(k, j))
        k = j
    return out


_NUMBER = re.compile(r"[-+±]?(\d+[.,]\d+|\d{2,})%?|\d[\d.]*/[\d./]+")


def _has_number(band: list[Run]) -> bool:
    """A table cell's number: a token that is nothing but a number ("87.6", "100.0%"; not a
    lone digit, which is as likely a subscript)."""
    return any(_NUMBER.fullmatch(t) for r in band for t in r.text.split())


def _page_lines(page: int, bands: list[list[Run]], gutter: float | None) -> list[Line]:
    """Lines in reading order: full-width lines split the page into zones; in each zone
    the left column comes before the right one."""
    if gutter is None:
        return [_make_line(page, b) for b in bands]
    out: list[Line] = []
    left: list[Line] = []
    right: list[Line] = []
    starts = sorted(min(r.x0 for r in b) for b in bands if any(r.x1 <= gutter for r in b))
    left_edge = starts[len(starts) // 10] if starts else 0.0
    rstarts = sorted(min(r.x0 for r in b if r.x0 > gutter) for b in bands
                     if any(r.x0 > gutter for r in b))
    right_edge = rstarts[len(rstarts) // 10] if rstarts else gutter
    ends = sorted(max(r.x1 for r in b) for b in bands if any(r.x0 > gutter for r in b))
    right_end = ends[(len(ends) * 9) // 10] if ends else None
    sizes = Counter(round(r.size, 1) for b in bands for r in b for _ in r.text)
    body = sizes.most_common(1)[0][0] if sizes else 10.0
    wide = _wide_rows(bands, gutter, right_edge, body)
    for k, b in enumerate(bands):
        if any(_crosses(r, gutter) for r in b) or _centred(b, gutter, left_edge, right_end) \
                or k in wide:
            out += left + right
            left, right = [], []
            out.append(_make_line(page, b, 0))
            continue
        lr = [r for r in b if r.x1 <= gutter + 1]
        rr = [r for r in b if r.x1 > gutter + 1]
        if lr:
            left.append(_make_line(page, lr, 1))
        if rr:
            right.append(_make_line(page, rr, 2))
    return out + left + right


def _drop_line_numbers(runs: list[Run], width: float) -> tuple[list[Run], int]:
    """Review copies number their lines in the margins: bare numbers left of (or right of)
    all the text, on many lines of the page."""
    text = [r for r in runs if len(r.text.strip()) > 8]
    if len(text) < 10:
        return runs, 0
    lefts = sorted(r.x0 for r in text)
    rights = sorted(r.x1 for r in text)
    left, right = lefts[len(lefts) // 50], rights[-1 - len(rights) // 50]
    marks = [r for r in runs if r.text.strip().isdigit() and len(r.text.strip()) <= 4
             and (r.x1 < left - 2 or r.x0 > right + 2)]
    if len(marks) < 10:
        return runs, 0
    drop = {id(r) for r in marks}
    return [r for r in runs if id(r) not in drop], len(marks)


def _norm_repeat(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).lower()
    return _DIGITS.sub("#", re.sub(r"\s+", " ", t)).strip()


def _drop_running(pages: list[list[Line]], height: float) -> int:
    """Remove running headers/footers (repeated near the top or bottom) and page numbers."""
    n_pages = len(pages)
    top_zone, bottom_zone = height * 0.9, height * 0.1
    seen: Counter[str] = Counter()
    for lines in pages:
        keys = {_norm_repeat(ln.text) for ln in lines if ln.y > top_zone or ln.y < bottom_zone}
        seen.update(keys)
    need = max(2, int(0.3 * n_pages + 0.5)) if n_pages >= 3 else n_pages + 1
    dropped = 0
    for i, lines in enumerate(pages):
        keep = []
        for ln in lines:
            edge = ln.y > top_zone or ln.y < bottom_zone
            if edge and (seen[_norm_repeat(ln.text)] >= need or _BARE_NUMBER.match(ln.text)):
                dropped += 1
                continue
            keep.append(ln)
        pages[i] = keep
    return dropped


_FRONT_NOTE = re.compile(r"correspondence|@\w|proceedings of|copyright|equal contribution|"
                         r"work done|universit|institute|laborator|department|preprint|"
                         r"under review|conference on", re.I)


def _drop_front_footnotes(first: list[Line], body: float) -> tuple[list[Line], int]:
    """The first page's footnote block at the foot of a column (affiliations,
    correspondence, the venue and copyright line): set smaller than the text, below it, and
    about the paper rather than in it. Left in, it lands in the Introduction mid-sentence."""
    drop: set[int] = set()
    i = len(first)
    while i > 0:  # each column's run of lines, from the end of the page back
        col = first[i - 1].column
        j = i
        while j > 0 and first[j - 1].column == col:
            j -= 1
        k = i
        while k > j and first[k - 1].size <= 0.92 * body:
            k -= 1
        note = first[k:i]
        words = sum(len(ln.text) for ln in note if re.search(r"[A-Za-z]{3}", ln.text))
        if k > j and words >= 40 and _FRONT_NOTE.search(" ".join(ln.text for ln in note)) \
                and first[k - 1].y > note[0].y:
            drop.update(range(k, i))
        i = j
    return [ln for n, ln in enumerate(first) if n not in drop], len(drop)


def layout(reader: Any) -> Layout:
    """Lines of every page in reading order."""
    fonts = Fonts()
    width = height = 0.0
    sizes: Counter[float] = Counter()
    pages: list[list[Line]] = []
    two = 0
    dropped_numbers = 0
    failed: list[int] = []
    rules: list[list[Rule]] = []
    for i in range(len(reader.pages)):
        try:
            page = reader.pages[i]
            box = page.mediabox
            x_off, y_off = float(box.left), float(box.bottom)
            w, h = float(box.width), float(box.height)
            runs = page_runs(page, fonts)
            if sum(len(r.text) for r in runs) < 200 and has_forms(page):
                runs = page_runs(page, fonts, forms=True)
        except Exception:  # noqa: BLE001 - pypdf raises many kinds on a damaged page
            failed.append(i + 1)
            pages.append([])
            rules.append([])
            continue
        width, height = max(width, w), max(height, h)
        for r in runs:
            r.x0 -= x_off
            r.x1 -= x_off
            r.y -= y_off
            sizes[round(r.size, 1)] += len(r.text)
        rules.append([Rule(r.x0 - x_off, r.x1 - x_off, r.y - y_off)
                      for r in getattr(runs, "rules", [])])
        kept, numbers = _drop_line_numbers(runs, w)
        dropped_numbers += numbers
        bands = _bands(kept)
        gutter = _find_gutter(bands, w)
        two += gutter is not None
        pages.append(_page_lines(i, bands, gutter))
    dropped = _drop_running(pages, height or 792.0) + dropped_numbers
    body = sizes.most_common(1)[0][0] if sizes else 10.0
    if pages:
        pages[0], notes = _drop_front_footnotes(pages[0], body)
        dropped += notes
    return Layout(pages=pages, width=width or 612.0, height=height or 792.0, body_size=body,
                  two_column_pages=two, dropped_lines=dropped, rotated_chars=fonts.rotated,
                  failed_pages=failed, rules=rules, dropped_glyphs=fonts.dropped)
