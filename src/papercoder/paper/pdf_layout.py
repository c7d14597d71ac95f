"""PDF page layout with pypdf: text pieces -> lines in reading order.

pypdf's ``visitor_text`` hands us each run of text with its position, font and size. We
measure each run with the font's width table, group runs into lines, find a two-column
gutter from where the lines sit, drop running headers, footers and page numbers, and
return the lines page by page in reading order (left column, then right column, with
full-width lines such as titles and wide tables kept in place).
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

_BOLD = re.compile(r"bold|medi|semibold|demi|black|heavy|cmbx|cmb\d|bx\d|-b$|\.b$", re.I)
_ITALIC = re.compile(r"ital|oblique|slant|cmti|cmsl|-i$", re.I)
_MONO = re.compile(r"courier|mono|cmtt|typewriter|consol|menlo|inconsolata|lmtt|sfmono|txtt|"
                   r"beramono|nimbusmon|dejavusansm|liberationmono|sourcecodepro", re.I)
_MATH = re.compile(r"cmmi|cmsy|cmex|msbm|msam|cmbsy|math|symbol|rsfs|eufm|eusm|stmary|wasy"
                   r"|bbm|dsrom|mnsymbol|txsy|pxsy|txex|pxex|cmmib", re.I)
_DIGITS = re.compile(r"\d+")
_BARE_NUMBER = re.compile(r"^\s*(page\s*)?[\divxlc]{1,5}(\s*(of|/)\s*\d+)?\s*$", re.I)


@dataclass
class Run:
    """One piece of text as pypdf reports it, with where it sits."""

    x0: float
    x1: float
    y: float
    size: float
    text: str
    bold: bool
    italic: bool
    math: bool
    seq: int = 0
    """Position in the content stream."""
    mono: bool = False
    """Set in a typewriter (code) font."""


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


# -- fonts --------------------------------------------------------------------------------
class _Fonts:
    """Width tables and style flags per font resource, built once per resource."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[Any, dict[str, float], float, bool, bool, bool, bool]] = {}
        self.rotated = 0
        """Characters of rotated text seen (and left out)."""

    def info(self, fd: Any) -> tuple[dict[str, float], float, bool, bool, bool, bool]:
        key = id(fd)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is fd:
            return hit[1], hit[2], hit[3], hit[4], hit[5], hit[6]
        widths: dict[str, float] = {}
        default = 500.0
        name = ""
        flags = 0
        weight = 0.0
        try:
            name = str(fd.get("/BaseFont", "")) if fd is not None else ""
            desc = fd.get("/FontDescriptor") if fd is not None else None
            desc = desc.get_object() if desc is not None else None
            if desc is not None:
                flags = int(desc.get("/Flags", 0) or 0)
                weight = float(desc.get("/FontWeight", 0) or 0)
            widths, default = _width_table(fd)
        except Exception:  # noqa: BLE001 - odd font dictionaries only cost us the widths
            pass
        base = name.split("+", 1)[-1]
        bold = bool(_BOLD.search(base)) or weight >= 600 or bool(flags & (1 << 18))
        italic = bool(_ITALIC.search(base)) or bool(flags & (1 << 6))
        math = bool(_MATH.search(base))
        mono = bool(_MONO.search(base)) or bool(flags & 1)
        self._cache[key] = (fd, widths, default, bold, italic, math, mono)
        return widths, default, bold, italic, math, mono


def _width_table(fd: Any) -> tuple[dict[str, float], float]:
    """Glyph widths (1/1000 em) keyed by the decoded character."""
    try:
        from pypdf.generic._font import Font
    except ImportError:  # older pypdf: estimate from the font size alone
        return {}, 500.0
    font = Font.from_font_resource(fd)
    raw = dict(font.character_widths)
    default = float(raw.pop("default", 0) or 0) or 500.0
    cmap = font.character_map or {}
    enc = font.encoding if isinstance(font.encoding, dict) else None
    out: dict[str, float] = {}
    for code, w in raw.items():
        if not isinstance(code, str) or not w:
            continue
        uni = cmap.get(code)
        if uni is None and enc is not None and len(code) == 1:
            uni = enc.get(ord(code))
        uni = uni if isinstance(uni, str) and uni else code
        out.setdefault(uni, float(w))
        out.setdefault(code, float(w))
    if default == 500.0 and out:
        default = sorted(out.values())[len(out) // 2]
    return out, default


# -- runs ---------------------------------------------------------------------------------
def mult(m: Any, n: Any) -> list[float]:
    """The product of two PDF matrices [a b c d e f]."""
    return [
        m[0] * n[0] + m[1] * n[2], m[0] * n[1] + m[1] * n[3],
        m[2] * n[0] + m[3] * n[2], m[2] * n[1] + m[3] * n[3],
        m[4] * n[0] + m[5] * n[2] + n[4], m[4] * n[1] + m[5] * n[3] + n[5],
    ]

def _skip_forms() -> Any:
    """A context in which pypdf does not descend into form XObjects (when it can)."""
    try:
        from pypdf import apply_configuration
    except ImportError:
        return contextlib.nullcontext()
    return apply_configuration(xform_maximum_invocations_per_extraction=0)


def has_forms(page: Any) -> bool:
    try:
        xobjects = page["/Resources"]["/XObject"]
        return any(xobjects[k].get_object().get("/Subtype") == "/Form" for k in xobjects)
    except Exception:  # noqa: BLE001 - no resources, no forms
        return False


def page_runs(page: Any, fonts: _Fonts, *, forms: bool = False) -> list[Run]:
    """The text runs of one page, upright text only.

    Form XObjects (included PDF figures, mostly) are skipped unless ``forms``: figure
    labels are noise for a reader, and parsing them is slow. With ``forms``, their text is
    placed with the form's matrix and kept when it holds a large share of the page's text
    (some producers wrap whole pages in a form).
    """
    runs: list[Run] = []
    order: list[Run] = []
    forms: list[list[Run]] = []
    stack: list[tuple[list[float], list[Run]]] = []  # (form -> page matrix, its runs)
    def before(op: bytes, args: Any, cm: Any, tm: Any) -> None:
        if op != b"Do" or not args or not forms:
            return
        matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
        try:
            xo = page["/Resources"]["/XObject"][args[0]].get_object() if not stack else None
            if xo is not None and "/Matrix" in xo:
                matrix = [float(v) for v in xo["/Matrix"]]
        except Exception:  # noqa: BLE001
            pass
        outer = mult(matrix, list(cm)) if not stack else stack[-1][0]
        stack.append((outer, []))

    def after(op: bytes, args: Any, cm: Any, tm: Any) -> None:
        if op == b"Do" and args and stack and forms:
            _, got = stack.pop()
            if stack:
                stack[-1][1].extend(got)
            elif got:
                forms.append(got)

    def visit(text: str, cm: Any, tm: Any, fd: Any, fs: float) -> None:
        if not text or not text.strip():
            return
        m = mult(tm, cm)
        if stack:
            m = mult(m, stack[-1][0])
        if m[0] <= 0 or m[3] <= 0 or abs(m[1]) > 1e-3 * abs(m[0]) or abs(m[2]) > 1e-3 * m[3]:
            fonts.rotated += len(text.strip())
            return  # rotated or mirrored text: margin stamps, rotated tables
        size = float(fs) * m[3]
        if size < 1:
            return
        widths, default, bold, italic, math, mono = fonts.info(fd)
        body = text.strip()
        units = sum(widths.get(c, default) for c in body)
        x0 = m[4]
        x1 = x0 + units / 1000.0 * float(fs) * m[0]
        run = Run(x0, x1, m[5], size, body if text[0] != " " else " " + body, bold, italic, math,
                  seq=len(order), mono=mono)
        order.append(run)
        (stack[-1][1] if stack else runs).append(run)

    with contextlib.nullcontext() if forms else _skip_forms():
        page.extract_text(visitor_text=visit, visitor_operand_before=before,
                          visitor_operand_after=after, orientations=(0, 90, 180, 270))
    # pypdf measured the true advance (kerning, stretched spaces) when it decided whether a
    # space separates two pieces; a piece that follows without one ends where the next starts.
    for a, b in pairwise(order):
        if not b.text.startswith(" ") and abs(a.y - b.y) < 0.5 * max(a.size, b.size) \
                and 0 < b.x0 - a.x1 < 0.6 * a.size:
            a.x1 = b.x0
    total = sum(len(r.text) for r in runs) + sum(len(r.text) for f in forms for r in f)
    for f in forms:
        if sum(len(r.text) for r in f) >= 0.3 * total:
            runs += f
    return runs


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
            for x in range(max(lo, int(r.x0) + 2), min(hi, int(r.x1) - 1) + 1):
                hit.add(x)
        for x in hit:
            cover[x - lo] += 1
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
    a, b = max(runs, key=lambda ab: ab[1] - ab[0])
    x = lo + (a + b) / 2
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


def _centred(band: list[Run], gutter: float, left_edge: float) -> bool:
    """A centred line with a gap at the gutter (an author list): not two column lines."""
    lr = [r for r in band if r.x1 <= gutter + 1]
    rr = [r for r in band if r.x1 > gutter + 1]
    if not lr or not rr:
        return False
    size = max(r.size for r in band)
    gap = min(r.x0 for r in rr) - max(r.x1 for r in lr)
    indent = min(r.x0 for r in lr) - left_edge
    return gap < 3 * size and indent > 0.25 * (gutter - left_edge)


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
    for b in bands:
        if any(_crosses(r, gutter) for r in b) or _centred(b, gutter, left_edge):
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


def layout(reader: Any) -> Layout:
    """Lines of every page in reading order."""
    fonts = _Fonts()
    width = height = 0.0
    sizes: Counter[float] = Counter()
    pages: list[list[Line]] = []
    two = 0
    dropped_numbers = 0
    failed: list[int] = []
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
            continue
        width, height = max(width, w), max(height, h)
        for r in runs:
            r.x0 -= x_off
            r.x1 -= x_off
            r.y -= y_off
            sizes[round(r.size, 1)] += len(r.text)
        runs, numbers = _drop_line_numbers(runs, w)
        dropped_numbers += numbers
        bands = _bands(runs)
        gutter = _find_gutter(bands, w)
        two += gutter is not None
        pages.append(_page_lines(i, bands, gutter))
    dropped = _drop_running(pages, height or 792.0) + dropped_numbers
    body = sizes.most_common(1)[0][0] if sizes else 10.0
    return Layout(pages=pages, width=width or 612.0, height=height or 792.0, body_size=body,
                  two_column_pages=two, dropped_lines=dropped, rotated_chars=fonts.rotated,
                  failed_pages=failed)
