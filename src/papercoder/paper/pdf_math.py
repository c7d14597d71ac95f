"""Display equations from glyph geometry: the runs of an equation block (and the thin rules
drawn among them) -> linear LaTeX, one string per row.

What the geometry tells: a rule with text above and below it is a fraction; a rule starting
where a radical sign ends covers the root's extent; small text centred above or below a big
operator is its limits; smaller text raised or lowered after a symbol is its superscript or
subscript (recursively); a lone "(6)" at the right is the equation number (``\\tag{6}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from papercoder.paper.pdf_runs import Rule, Run

_BIG_OPS = set("∑∏∫∮∐⋃⋂⨁⨂")
_LIMIT_WORDS = {"lim", "max", "min", "sup", "inf", "argmax", "argmin", "arg max", "arg min"}
_ACCENTS = {"˜": "tilde", "~": "tilde", "ˆ": "hat", "^": "hat", "¯": "bar", "˙": "dot",
            "¨": "ddot", "´": "acute", "`": "grave", "ˇ": "check", "˘": "breve", "→": "vec",
            "⃗": "vec"}
_ACCENT_IN_RUN = re.compile("([" + "".join(k for k in _ACCENTS if k not in "^~`")
                            + r"])(\w)")
_TAG = re.compile(r"^\(\s*([A-Z]?\d{1,3}[a-z]?)\s*\)$")
_LATEX_ESCAPES = {"{": "\\{", "}": "\\}", "#": "\\#", "%": "\\%", "&": "\\&", "$": "\\$",
                  "\\": "\\backslash "}


@dataclass
class Atom:
    x0: float
    x1: float
    y: float
    size: float
    text: str
    latex: bool = False
    """Text already in LaTeX (a built fraction or root): not escaped again."""
    big: bool = False
    """A big operator (sum, integral) that can carry limits."""
    ex: bool = False
    """From a maths-extension font: its origin is at the top of the glyph."""
    raw: bool = False
    """Text already in LaTeX (an accented symbol) but placed like any other atom."""
    top: float = 0.0
    """Where the glyph's origin was before it was moved onto its row."""

    @property
    def centre(self) -> float:
        return (self.x0 + self.x1) / 2


def _escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(c, c) for c in text)


def _atoms(runs: list[Run]) -> list[Atom]:
    out = []
    for r in runs:
        t = r.text.strip()
        if not t:
            continue
        t = t.replace("||", "‖")
        big = t in _BIG_OPS or t in _LIMIT_WORDS
        a = Atom(r.x0, r.x1, r.y, r.size, t, big=big, ex=getattr(r, "ex", False), top=r.y)
        if len(t) > 1 and any(c in _ACCENTS for c in t):
            # An accent set before its letter in the same run; one left at the end of a
            # run belongs to whatever comes next.
            a.text = _ACCENT_IN_RUN.sub(
                lambda m: "\\" + _ACCENTS[m.group(1)] + "{" + _escape(m.group(2)) + "}",
                _escape(t))
            a.raw = a.text != _escape(t)
            if a.text[-1] in _ACCENTS:
                a.text = a.text[:-1]
                out.append(Atom(a.x1 - 0.3 * r.size, a.x1 + 0.2 * r.size, r.y, r.size,
                                t[-1]))
        out.append(a)
    out = _accents(out)
    # An extensible delimiter is drawn as pieces stacked at one x: keep one.
    pieces: dict[tuple[str, int], tuple[Atom, float]] = {}
    kept: list[Atom] = []
    for a in sorted(out, key=lambda a: -a.y):
        if a.ex and not a.big:
            key = (a.text, round(a.x0))
            hit = pieces.get(key)
            if hit is not None and hit[1] - a.top < 1.6 * a.size:  # the next piece down
                pieces[key] = (hit[0], a.top)
                continue
            pieces[key] = (a, a.top)
        kept.append(a)
    out = kept
    # Two bars side by side are the double bar of a norm.
    out.sort(key=lambda a: (round(a.y, 1), a.x0))
    merged: list[Atom] = []
    for a in out:
        p = merged[-1] if merged else None
        if p is not None and p.text in "|‖" and a.text in "|‖" and abs(p.y - a.y) < 0.5 and \
                0 <= a.x0 - p.x1 < 0.35 * a.size:
            p.text, p.x1 = "‖", a.x1
            continue
        merged.append(a)
    return merged


def _accents(atoms: list[Atom]) -> list[Atom]:
    """An accent glyph set over a symbol becomes \tilde{θ} (etc.) on that symbol."""
    rest = [a for a in atoms if a.text not in _ACCENTS]
    for acc in (a for a in atoms if a.text in _ACCENTS):
        under = [b for b in rest if b.x0 - 1 <= acc.centre <= b.x1 + 1
                 and acc.y - 1.0 * acc.size <= b.y <= acc.y + 0.1 * acc.size
                 and len(b.text) == 1 and not b.latex]
        if not under:
            continue  # a stray accent: dropped
        b = min(under, key=lambda b: abs(b.centre - acc.centre))
        b.text = "\\" + _ACCENTS[acc.text] + "{" + _escape(b.text) + "}"
        b.raw = True
    return rest


def _main_size(atoms: list[Atom]) -> float:
    """The size of the formula's own line: the largest size that holds a fair share of the
    characters (scripts can outnumber it in a formula full of indices)."""
    counts: dict[float, int] = {}
    for a in atoms:
        if a.text not in _BIG_OPS and not a.ex:
            counts[round(a.size, 1)] = counts.get(round(a.size, 1), 0) + len(a.text)
    if not counts:
        return 10.0
    total = sum(counts.values())
    return max(s for s, n in counts.items() if n >= 0.15 * total)


def linear(atoms: list[Atom], baseline: float, size: float) -> str:
    """Atoms on one baseline, left to right, with scripts attached (recursively)."""
    atoms = sorted(atoms, key=lambda a: (a.x0, -a.y))

    def on_line(a: Atom) -> bool:
        if a.latex and a.size < 0.8 * size and abs(a.y - baseline) > 0.25 * size:
            return False  # a small fraction raised or lowered: a script
        return a.latex or a.ex or a.text in _BIG_OPS or (
            abs(a.y - baseline) < 0.25 * size and a.size >= 0.8 * size)

    out: list[str] = []
    prev_x1: float | None = None
    k = 0
    while k < len(atoms):
        a = atoms[k]
        if on_line(a) or prev_x1 is None:
            if prev_x1 is not None and a.x0 - prev_x1 > 0.12 * size:
                out.append(" ")
            out.append(a.text if a.latex or a.raw else _escape(a.text))
            prev_x1 = max(prev_x1 or a.x1, a.x1)
            k += 1
            continue
        # Scripts: the atoms up to the next one on the line, split above and below.
        j = k
        while j < len(atoms) and not on_line(atoms[j]):
            j += 1
        group = atoms[k:j]
        down = [b for b in group if b.y < baseline]
        up = [b for b in group if b.y >= baseline]
        if down and up:
            # A superscript of a subscript may sit above the baseline: it is smaller
            # than the subscript and close over it.
            ds = max(b.size for b in down)
            db = _baseline(down, max(down, key=lambda b: b.size))
            dx1 = max(b.x1 for b in down)
            nested = [b for b in up if b.size < ds - 0.3 and b.y - db < 0.9 * ds
                      and b.x0 <= dx1 + 0.3 * size]
            if nested:
                down += nested
                up = [b for b in up if b not in nested]
        for mark, part in (("_", down), ("^", up)):
            if part:
                first = min(part, key=lambda b: b.x0)
                ref = max(part, key=lambda b: (b.size, -abs(b.y - first.y)))
                inner = linear(part, _baseline(part, ref), ref.size)
                out.append(mark + "{" + inner + "}")
        prev_x1 = max(g.x1 for g in group)
        k = j
    return "".join(out).strip()


def _take(atoms: list[Atom], keep: list[Atom]) -> None:
    ids = {id(a) for a in keep}
    atoms[:] = [a for a in atoms if id(a) not in ids]


def _fractions(atoms: list[Atom], rules: list[Rule], size: float) -> None:
    """Replace each rule with text directly above and below it by a \\frac atom, innermost
    first; a rule starting where a radical sign ends becomes a \\sqrt atom."""
    def level(a: Atom) -> float:
        # A big operator hangs from its origin: judge it by about where its baseline is.
        return a.top - 0.8 * a.size if a.ex else a.y

    for rule in sorted(rules, key=lambda r: r.x1 - r.x0):
        inside = [a for a in atoms if a.x0 >= rule.x0 - 1.5 and a.x1 <= rule.x1 + 1.5]
        num = [a for a in inside if 0 < level(a) - rule.y < 1.25 * size]
        den = [a for a in inside if 0 < rule.y - level(a) < 1.5 * size]
        radical = [a for a in atoms if a.text == "√" and abs(a.x1 - rule.x0) < 2.0
                   and a.y - 0.3 * size < rule.y]
        if radical:
            body = [a for a in den if rule.y - a.y < 1.3 * size]
            if not body:
                continue
            base = max(body, key=lambda a: a.size)
            text = "\\sqrt{" + linear(body, base.y, base.size) + "}"
            rad = radical[0]
            _take(atoms, [*body, rad])
            atoms.append(Atom(rad.x0, rule.x1, base.y, base.size, text, latex=True))
            continue
        if not num or not den:
            continue
        nb = min(num, key=lambda a: (abs(a.size - size), a.y))
        db = max(den, key=lambda a: (-abs(a.size - size), a.y))
        top = linear(num, _baseline(num, nb), nb.size)
        bottom = linear(den, _baseline(den, db), db.size)
        _take(atoms, num + den)
        fsize = max(a.size for a in num + den)
        atoms.append(Atom(rule.x0, rule.x1, rule.y - 0.25 * fsize, fsize,
                          "\\frac{" + top + "}{" + bottom + "}", latex=True))


def _baseline(group: list[Atom], hint: Atom) -> float:
    """The baseline of a group: the lowest y among its largest atoms."""
    big = max(a.size for a in group)
    return min((a.y for a in group if a.size >= big - 0.3 and not a.latex), default=hint.y)


def _rows(atoms: list[Atom], size: float) -> list[float]:
    """Baselines of the rows: where main-size characters sit (a built fraction sits on the
    axis, a quarter em above the baseline of its row)."""
    ys = sorted({round(a.y, 1) for a in atoms if a.size >= 0.85 * size and not a.ex and
                 a.text not in _BIG_OPS and not a.latex})
    rows: list[float] = []
    for y in reversed(ys):
        if rows and abs(rows[-1] - y) < 0.45 * size:
            continue
        rows.append(y)
    for a in atoms:
        if a.latex and a.size >= 0.8 * size:
            near = min(rows, key=lambda r: abs(r - a.y), default=None)
            if near is not None and abs(near - a.y) < 0.6 * size:
                a.y = near
            else:
                rows.append(a.y)
                rows.sort(reverse=True)
    for a in atoms:
        if a.ex and rows:
            # A big delimiter hangs from its origin: its row is the nearest one below.
            below = [r for r in rows if r <= a.y + 0.3 * size]
            a.y = max(below) if below else min(rows, key=lambda r: abs(r - a.y))
    return rows


def _op_box(op: Atom, size: float) -> tuple[float, float]:
    """The vertical extent (bottom, top) of a big operator's glyph."""
    if op.ex:  # hangs from its origin
        depth = (2.2 if op.text == "∫" else 1.4) * max(op.size, size) if op.size >= size \
            else 1.0 * size
        return op.top - depth, op.top
    return op.y - 0.25 * size, op.y + 0.75 * size


def _clusters(atoms: list[Atom], size: float) -> list[list[Atom]]:
    """Small atoms that sit together (one limit such as "(x,y)∈D_t")."""
    out: list[list[Atom]] = []
    for a in sorted(atoms, key=lambda a: (-a.y, a.x0)):
        for c in out:
            if any(abs(b.y - a.y) < 0.5 * size and (a.x0 - b.x1 < 0.4 * size and
                                                     b.x0 - a.x1 < 0.4 * size) for b in c):
                c.append(a)
                break
        else:
            out.append([a])
    return out


def _limits(atoms: list[Atom], size: float) -> None:
    """Small text centred above or below a big operator (display limits), each piece given
    to the nearest operator it is centred on."""
    ops = [a for a in atoms if a.big]
    if not ops:
        return
    for op in ops:
        if op.text not in _BIG_OPS:
            op.top = op.y
    small = [a for a in atoms if not a.big and a.size < 0.9 * size and not a.latex]
    won: dict[int, tuple[list[Atom], list[Atom]]] = {id(op): ([], []) for op in ops}
    for c in _clusters(small, size):
        cx0, cx1 = min(a.x0 for a in c), max(a.x1 for a in c)
        centre = (cx0 + cx1) / 2
        cy = max(a.y for a in c)
        best: tuple[float, Atom, bool] | None = None
        for op in ops:
            if not (op.x0 - 0.4 * size <= centre <= op.x1 + 0.4 * size):
                continue
            if op.text == "∫" and centre >= op.x1 - 0.1 * size:
                continue  # an integral's scripts are set at its side
            bottom, top = _op_box(op, size)
            if cy > top - 0.2 * size:
                gap, under = cy - top, False
            elif cy + 0.7 * c[0].size < bottom + 0.3 * size:
                gap, under = bottom - (cy + 0.7 * c[0].size), True
            else:
                continue
            if gap < 1.0 * size and (best is None or gap < best[0]):
                best = (gap, op, under)
        if best is not None:
            won[id(best[1])][1 if best[2] else 0].extend(c)
    for op in ops:
        above, below = won[id(op)]
        if not above and not below:
            continue
        text = _escape(op.text)
        if below:
            b = max(below, key=lambda a: a.size)
            text += "_{" + linear(below, _baseline(below, b), b.size) + "}"
        if above:
            b = max(above, key=lambda a: a.size)
            text += "^{" + linear(above, _baseline(above, b), b.size) + "}"
        _take(atoms, below + above)
        op.text = text
        op.latex = True
        op.x1 = max([op.x1, *(a.x1 for a in below + above)])
        if op.ex:  # from the glyph's top to its row's baseline
            bottom, top = _op_box(op, size)
            op.y = (top + bottom) / 2 - 0.25 * size
            op.ex = False


def display_latex(runs: list[Run], rules: list[Rule]) -> list[str]:
    """The rows of a display equation as linear LaTeX (each with its \\tag when numbered)."""
    atoms = _atoms(runs)
    if not atoms:
        return []
    size = _main_size(atoms)
    x0 = min(a.x0 for a in atoms) - 2
    x1 = max(a.x1 for a in atoms) + 2
    y0 = min(a.y for a in atoms) - size
    y1 = max(a.y for a in atoms) + size
    near = [r for r in rules if r.x0 >= x0 and r.x1 <= x1 and y0 <= r.y <= y1
            and r.x1 - r.x0 < 0.9 * (x1 - x0) + 4]
    # Equation numbers at the right edge, before anything else claims them.
    tags: list[Atom] = []
    for a in atoms:
        if _TAG.match(a.text) and a.size >= 0.85 * size:
            others = [b for b in atoms if b is not a and abs(b.y - a.y) < 0.5 * size]
            if not others or a.x0 - max(b.x1 for b in others) > 0.5 * size:
                tags.append(a)
    _take(atoms, tags)
    for a in atoms:
        if a.text in _LIMIT_WORDS and a.size < 0.85 * size:
            a.big = False  # "min" as a subscript, not an operator
    _limits(atoms, size)
    _fractions(atoms, near, size)
    rows = _rows(atoms, size)
    if not rows:
        return [linear(atoms, atoms[0].y, size)]
    # Every remaining atom joins the row whose baseline is nearest (scripts sit close).
    groups: dict[float, list[Atom]] = {y: [] for y in rows}
    for a in atoms:
        y = min(rows, key=lambda r: abs(r - a.y) if not a.big else abs(r - a.y) * 0.5)
        groups[y].append(a)
    out = []
    for y in rows:
        text = linear(groups[y], y, size)
        row_tags = [t for t in tags if abs(t.y - y) < 0.6 * size]
        for t in row_tags:
            m = _TAG.match(t.text)
            text += " \\tag{" + (m.group(1) if m else t.text) + "}"
        if text.strip():
            out.append(text)
    # A tag that sits between rows (a multi-line equation) goes on the nearest row.
    placed = {id(t) for y in rows for t in tags if abs(t.y - y) < 0.6 * size}
    for t in tags:
        if id(t) not in placed and out:
            m = _TAG.match(t.text)
            out[-1] += " \\tag{" + (m.group(1) if m else t.text) + "}"
    return out
