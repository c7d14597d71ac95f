"""The paper's own macros: \\newcommand, \\renewcommand, \\providecommand, \\def and
\\DeclareMathOperator, with and without arguments (and an optional default argument),
expanded wherever they are used."""

from __future__ import annotations

import re
from dataclasses import dataclass

from papercoder.paper.latex_lex import read_group, read_optional

_DEFINE = re.compile(r"\\(newcommand|renewcommand|providecommand|DeclareRobustCommand"
                     r"|DeclareMathOperator)\*?|\\(?:g|e|x)?def(?![A-Za-z])")
_MAX_PASSES = 12
_MAX_GROWTH = 8  # stop expanding when the text grows past this factor (recursive macros)


@dataclass
class Macro:
    name: str
    nargs: int
    body: str
    default: str | None = None
    """The default of an optional first argument (\\newcommand{\\x}[2][dflt]{...})."""


def collect(text: str) -> tuple[dict[str, Macro], str]:
    """Find the macro definitions; return them and the text without them."""
    macros: dict[str, Macro] = {}
    out: list[str] = []
    pos = 0
    for m in _DEFINE.finditer(text):
        if m.start() < pos:
            continue
        parsed = _parse_def(text, m)
        if parsed is None:
            continue
        macro, end = parsed
        if m.group(1) == "providecommand" and macro.name in macros:
            pass
        else:
            macros[macro.name] = macro
        out.append(text[pos:m.start()])
        pos = end
    out.append(text[pos:])
    return macros, "".join(out)


def _parse_def(text: str, m: re.Match[str]) -> tuple[Macro, int] | None:
    kind = m.group(1)
    i = m.end()
    if kind is None:  # \def\name#1#2{body}
        nm = re.match(r"\s*\\([A-Za-z@]+)", text[i:])
        if not nm:
            return None
        name = nm.group(1)
        i += nm.end()
        params = re.match(r"((?:#\d)*)\s*\{", text[i:])
        if not params:
            return None  # delimited parameters: leave it alone
        nargs = len(params.group(1)) // 2
        i += len(params.group(1))
        g = read_group(text, i)
        if g is None:
            return None
        return Macro(name, nargs, g[0]), g[1]
    g = read_group(text, i)
    if g is None:
        return None
    name = g[0].strip().lstrip("\\")
    if not re.fullmatch(r"[A-Za-z@]+", name):
        return None
    i = g[1]
    if kind == "DeclareMathOperator":
        b = read_group(text, i)
        if b is None:
            return None
        return Macro(name, 0, "\\operatorname{" + b[0] + "}"), b[1]
    nargs = 0
    default = None
    n, i = read_optional(text, i)
    if n is not None:
        try:
            nargs = int(n.strip())
        except ValueError:
            return None
        default, i = read_optional(text, i)
    b = read_group(text, i)
    if b is None:
        return None
    return Macro(name, nargs, b[0], default), b[1]


def expand(text: str, macros: dict[str, Macro]) -> str:
    """Expand the macros until nothing changes (bounded, for recursive definitions)."""
    if not macros:
        return text
    names = sorted(macros, key=len, reverse=True)
    use = re.compile(r"\\(" + "|".join(re.escape(n) for n in names) + r")(?![A-Za-z@])")
    limit = max(len(text) * _MAX_GROWTH, 10_000)
    for _ in range(_MAX_PASSES):
        new = _expand_once(text, macros, use)
        if new == text or len(new) > limit:
            return new if len(new) <= limit else text
        text = new
    return text


def _expand_once(text: str, macros: dict[str, Macro], use: re.Pattern[str]) -> str:
    out: list[str] = []
    pos = 0
    for m in use.finditer(text):
        if m.start() < pos:
            continue
        mac = macros[m.group(1)]
        i = m.end()
        args: list[str] = []
        need = mac.nargs
        if mac.default is not None and need:
            opt, i = read_optional(text, i)
            args.append(mac.default if opt is None else opt)
            need -= 1
        ok = True
        for _ in range(need):
            g = read_group(text, i)
            if g is None:
                ok = False
                break
            args.append(g[0])
            i = g[1]
        if not ok:
            continue
        body = mac.body
        for k, a in enumerate(args, start=1):
            body = body.replace(f"#{k}", a)
        out.append(text[pos:m.start()])
        out.append(body)
        pos = i
    out.append(text[pos:])
    return "".join(out)
