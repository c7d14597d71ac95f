"""LaTeX body text to Markdown, keeping every formula as LaTeX.

Display math (equation, align, gather, multline, eqnarray, \\[ \\], $$) is kept verbatim
inside $$ ... $$ and collected; inline math stays $...$. Lists become Markdown lists,
tables pipe tables, figures and tables their numbered captions, algorithms numbered-free
lines, and the rest of the markup is dropped while its text is kept.
"""

from __future__ import annotations

import re

from papercoder.paper.latex_blocks import Blocks, Context
from papercoder.paper.latex_commands import (
    ACCENTS,
    ALGO,
    CITE,
    CODE,
    DISPLAY_ENVS,
    DROP_ARGS,
    DROP_ENVS,
    DROP_SWITCHES,
    FLOAT_FIGURE,
    FLOAT_TABLE,
    LISTS,
    REFS,
    SYMBOLS,
    TABULAR,
    TEXT_ARG,
    THEOREMS,
)
from papercoder.paper.latex_lex import (
    find_env,
    own_labels,
    read_group,
    read_optional,
    take_optional,
)


class Converter(Blocks):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- blocks ------------------------------------------------------------------------------
    def convert(self, text: str) -> str:
        """LaTeX (no sectioning commands) to Markdown paragraphs."""
        out: list[str] = []
        pos = 0
        display = re.compile(r"\\begin\s*\{([A-Za-z0-9*]+)\}|(?<!\\)\\\[|(?<!\\)\$\$")
        while True:
            m = display.search(text, pos)
            if m is None:
                out.append(self.inline(text[pos:]))
                break
            out.append(self.inline(text[pos:m.start()]))
            if m.group(0) == "\\[":
                end = text.find("\\]", m.end())
                end = len(text) if end == -1 else end
                out.append(self.display(text[m.end():end], None))
                pos = end + 2
            elif m.group(0) == "$$":
                end = text.find("$$", m.end())
                end = len(text) if end == -1 else end
                out.append(self.display(text[m.end():end], None))
                pos = end + 2
            else:
                name = m.group(1)
                env = find_env(text, name, m.start())
                if env is None:  # pragma: no cover - the regex found a \begin
                    pos = m.end()
                    continue
                _, c0, c1, end = env
                out.append(self.environment(name, text[c0:c1]))
                pos = end
        return _tidy("".join(out))

    def environment(self, name: str, body: str) -> str:
        base = name.rstrip("*")
        if base in DISPLAY_ENVS:
            return self.display(body, name)
        if name in DROP_ENVS:
            return "\n\n"
        if base in LISTS or name in LISTS:
            return self.listing(body, LISTS.get(base, "-"), base == "description")
        if name in FLOAT_FIGURE or name in FLOAT_TABLE:
            return self.floating(name, body)
        if base in TABULAR:
            return "\n\n" + self.tabular(body) + "\n\n"
        if name in CODE:
            _, body = take_optional(body)
            return "\n\n```\n" + body.strip("\n") + "\n```\n\n"
        if name in ALGO:
            return self.algorithm(name, body)
        if base.lower() in THEOREMS or base.lower().rstrip("s") in THEOREMS:
            title, body = take_optional(body)
            label = base.capitalize()
            if base.lower() != "proof" and not name.endswith("*"):
                n = self.ctx.theorems[base.lower()] = self.ctx.theorems.get(base.lower(), 0) + 1
                label += f" {n}"
                for lab in own_labels(body):
                    self._label(lab, str(n), base.lower())
            label += f" ({self.inline(title)})" if title else ""
            inner = self.convert(body)
            style = "*" if base.lower() == "proof" else "**"
            return f"\n\n{style}{label}.{style} {inner}\n\n"
        if base in ("appendices", "appendix"):
            self.ctx.appendix = True
        # Anything else (center, minipage, quote, unknown): keep its text.
        if base in ("minipage", "tabularx", "adjustbox", "wrapfigure", "multicols", "column"):
            _, body = take_optional(body)
            g = read_group(body, 0)
            if g is not None and re.fullmatch(r"[\d.\\a-z]*", g[0].strip() or "x"):
                body = body[g[1]:]
        return "\n\n" + self.convert(body) + "\n\n"

    # -- inline ------------------------------------------------------------------------------
    def inline(self, text: str) -> str:
        """Text with inline math kept verbatim and markup removed."""
        out: list[str] = []
        pos = 0
        while True:
            m = _INLINE_TOKEN.search(text, pos)
            if m is None:
                out.append(_plain(text[pos:]))
                break
            out.append(_plain(text[pos:m.start()]))
            tok = m.group(0)
            if tok == "$" or tok == "\\(":
                close = "$" if tok == "$" else "\\)"
                end = _find_math_end(text, m.end(), close)
                if end is None:
                    out.append(_plain(tok))
                    pos = m.end()
                    continue
                math = re.sub(r"\\label\s*\{[^}]*\}", "", text[m.end():end])
                out.append("$" + math.strip() + "$")
                pos = end + len(close)
                continue
            name = m.group(1)
            rep, i = self._command(name, text, m.end())
            out.append(rep)
            pos = max(i, m.end())
        return "".join(out)

    def _command(self, name: str, text: str, i: int) -> tuple[str, int]:
        bare = name.rstrip("*")
        if bare in ("verb", "lstinline") and i < len(text):
            _, i = read_optional(text, i) if bare == "lstinline" else (None, i)
            delim = "}" if text[i] == "{" else text[i]
            end = text.find(delim, i + 1)
            if end == -1:
                return "", i
            return f"`{text[i + 1:end]}`", end + 1
        if bare == "label":
            g = read_group(text, i)
            if g is None:
                return "", i
            if self.ctx.section:
                self._label(g[0].strip(), self.ctx.section, "section")
            return "", g[1]
        if name in ACCENTS or (bare in ACCENTS and len(bare) == 1 and bare.isalpha()
                                and re.match(r"\s*\{", text[i:])):
            g = read_group(text, i)
            if g is None:
                return "", i
            letter = g[0].strip().lstrip("\\")
            letter = {"i": "i", "j": "j"}.get(letter, letter)
            if len(letter) == 1:
                return letter + ACCENTS[name if name in ACCENTS else bare], g[1]
            return letter, g[1]
        if name in DROP_ARGS or bare in DROP_ARGS:
            n = DROP_ARGS.get(name, DROP_ARGS.get(bare, 1))
            _, i = read_optional(text, i)
            for _ in range(n):
                g = read_group(text, i)
                if g is None:
                    break
                i = g[1]
                _, i = read_optional(text, i)
            return "", i
        if bare in DROP_SWITCHES:
            return (" " if bare in ("and", "AND") else ""), i
        if CITE.fullmatch(name):
            _, i = read_optional(text, i)
            _, i = read_optional(text, i)
            g = read_group(text, i)
            if g is None:
                return "", i
            if name.startswith("nocite"):
                return "", g[1]
            keys = ", ".join(k.strip() for k in g[0].split(",") if k.strip())
            return f"[{keys}]", g[1]
        if bare in REFS:
            g = read_group(text, i)
            if g is None:
                return "", i
            return self._ref(bare, g[0]), g[1]
        if bare in ("footnote", "footnotetext", "tablefootnote"):
            _, i = read_optional(text, i)
            g = read_group(text, i)
            if g is None:
                return "", i
            return f" (Footnote: {self.inline(g[0]).strip()})", g[1]
        if bare == "url":
            g = read_group(text, i)
            return (g[0], g[1]) if g else ("", i)
        if bare == "href":
            g1 = read_group(text, i)
            g2 = read_group(text, g1[1]) if g1 else None
            if g1 is None or g2 is None:
                return "", i
            label = self.inline(g2[0]).strip()
            return (f"{label} ({g1[0]})" if label != g1[0] else g1[0]), g2[1]
        if bare == "ding":
            g = read_group(text, i)
            if g is None:
                return "", i
            return {"51": "✓", "52": "✓", "55": "✗", "56": "✗"}.get(g[0].strip(), ""), g[1]
        if bare == "texorpdfstring":
            g1 = read_group(text, i)
            g2 = read_group(text, g1[1]) if g1 else None
            if g1 is None:
                return "", i
            return self.inline(g1[0]), (g2[1] if g2 else g1[1])
        if bare in ("begin", "end"):  # a stray environment marker
            g = read_group(text, i)
            return "", (g[1] if g else i)
        if bare in ("textcolor", "colorbox"):
            g = read_group(text, i)  # the colour
            return ("", g[1]) if g else ("", i)
        if bare in ("resizebox", "scalebox", "raisebox", "adjustbox", "rotatebox"):
            n = 2 if bare == "resizebox" else 1
            for _ in range(n):
                _, i = read_optional(text, i)
                g = read_group(text, i)
                if g is None:
                    break
                i = g[1]
            return "", i
        if bare in TEXT_ARG:
            mark = TEXT_ARG[bare]
            _, i = read_optional(text, i)
            g = read_group(text, i)
            if g is None:
                return "", i
            inner = self.inline(g[0])
            if mark in ("^", "_"):
                return f"{mark}{{{inner}}}", g[1]
            return (f"{mark}{inner.strip()}{mark}" if inner.strip() and mark else inner), g[1]
        if bare in SYMBOLS:
            if text[i:i + 2] == "{}":
                i += 2
            return SYMBOLS[bare], i
        if bare in ("item",):
            return "\n- ", i
        # Unknown: drop the command name, keep any braced text that follows.
        return "", i

    def _ref(self, kind: str, keys: str) -> str:
        out = []
        for key in (k.strip() for k in keys.split(",")):
            num = self.ctx.labels.get(key)
            what = self.ctx.kinds.get(key, "")
            if num is None:
                out.append(f"[{key}]")
                continue
            if REFS[kind] == "eq" or (what == "equation" and REFS[kind] == "auto"):
                text = f"({num})"
                out.append(("Equation " if REFS[kind] == "auto" else "") + text)
            elif REFS[kind] == "auto":
                word = {"section": "Appendix" if num[:1].isalpha() else "Section",
                        "figure": "Figure", "table": "Table",
                        "algorithm": "Algorithm"}.get(what, what.capitalize())
                out.append(f"{word} {num}".strip())
            else:
                out.append(num)
        return ", ".join(out)


_INLINE_TOKEN = re.compile(r"\\\(|(?<!\\)\$|\\([A-Za-z@]+\*?|[\"'`^~=.])")


def _find_math_end(text: str, i: int, close: str) -> int | None:
    while i < len(text):
        if text.startswith(close, i):
            return i
        i += 2 if text[i] == "\\" else 1
    return None


def _plain(text: str) -> str:
    """Character-level cleanup of text between commands."""
    if not text:
        return text
    text = text.replace("---", "—").replace("--", "–")
    text = text.replace("``", "“").replace("''", "”")
    text = re.sub(r"(?<!\\)~", " ", text)
    text = re.sub(r"\\\\(\[[^\]]*\])?", "\n", text)
    text = text.replace("\\{", "\x01").replace("\\}", "\x02")
    text = re.sub(r"\\([&%$#_])", r"\1", text)
    text = re.sub(r"\\[,;:! ]", " ", text)
    text = re.sub(r"\\/", "", text)
    text = re.sub(r"[{}]", "", text)
    return text.replace("\x01", "{").replace("\x02", "}")


def _tidy(text: str) -> str:
    lines = []
    for ln in text.split("\n"):
        indent = re.match(r"^( +)(?=- |\d+\. )", ln)  # nested list items keep their indent
        ln = re.sub(r"[ \t]+", " ", ln).strip()
        lines.append((indent.group(1) if indent else "") + ln)
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    # Single line breaks inside a paragraph are soft: join them, except in lists, tables,
    # code and display math.
    paras = []
    for p in text.split("\n\n"):
        if p.lstrip().startswith(("```", "$$", "|", "- ", "1. ")) or "\n- " in p or \
                "\n|" in p or "\n  - " in p or \
                re.search(r"^\d+\. ", p, re.M) or "\n$$" in p:
            paras.append(p)
        else:
            paras.append(re.sub(r"\s*\n\s*", " ", p))
    return "\n\n".join(p for p in paras if p.strip()).strip()
