"""PDF text runs with pypdf: each piece of text with its position, size, font style and
measured width (from the font's width table), in content-stream order."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

_BOLD = re.compile(r"bold|medi|semibold|demi|black|heavy|cmbx|cmb\d|bx\d|-b$|\.b$", re.I)
_ITALIC = re.compile(r"ital|oblique|slant|cmti|cmsl|-i$", re.I)
_MONO = re.compile(r"courier|mono|cmtt|typewriter|consol|menlo|inconsolata|lmtt|sfmono|txtt|"
                   r"beramono|nimbusmon|dejavusansm|liberationmono|sourcecodepro", re.I)
_MATH = re.compile(r"cmmi|cmsy|cmex|msbm|msam|cmbsy|math|symbol|rsfs|eufm|eusm|stmary|wasy"
                   r"|bbm|dsrom|mnsymbol|txsy|pxsy|txex|pxex|cmmib", re.I)


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


# -- fonts --------------------------------------------------------------------------------
class Fonts:
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


def page_runs(page: Any, fonts: Fonts, *, forms: bool = False) -> list[Run]:
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
