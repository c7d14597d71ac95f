"""Just enough LaTeX lexing: balanced groups, optional arguments, comments."""

from __future__ import annotations

import re

_VERBATIM = re.compile(r"\\begin\s*\{(verbatim\*?|lstlisting|minted|Verbatim|alltt)\}")
_COMMENT_ENV = re.compile(r"\\begin\{comment\}.*?\\end\{comment\}", re.S)
_IFFALSE = re.compile(r"\\iffalse\b.*?\\fi\b", re.S)


def _comment_at(line: str) -> int | None:
    i = line.find("%")
    while i != -1:
        k = i
        while k > 0 and line[k - 1] == "\\":
            k -= 1
        if (i - k) % 2 == 0:
            return i
        i = line.find("%", i + 1)
    return None


def strip_comments(text: str) -> str:
    """Remove % comments (not \\%), comment environments and \\iffalse blocks.

    As in TeX, a comment swallows its line break and the next line's indentation; a line
    that held only a comment disappears without joining its neighbours.
    """
    out: list[str] = []
    join = False
    verbatim: str | None = None
    for line in text.split("\n"):
        if verbatim is not None:  # % is a character in verbatim text
            out.append(line)
            if re.search(r"\\end\s*\{" + re.escape(verbatim) + r"\}", line):
                verbatim = None
            continue
        v = _VERBATIM.search(line)
        if v and not re.search(r"\\end\s*\{" + re.escape(v.group(1)) + r"\}", line[v.end():]):
            if join and out:
                out[-1] += line[:v.start()].lstrip(" \t") + line[v.start():]
            else:
                out.append(line)
            verbatim, join = v.group(1), False
            continue
        if not line.strip():  # an empty line is a paragraph break, even after a comment
            out.append("")
            join = False
            continue
        if join:
            line = line.lstrip(" \t")
        at = _comment_at(line)
        piece = line if at is None else line[:at]
        if at is not None and not piece.strip() and not join:
            continue
        if join and out:
            out[-1] += piece
        else:
            out.append(piece)
        join = at is not None
    text = "\n".join(out)
    text = _COMMENT_ENV.sub("", text)
    return _IFFALSE.sub("", text)


def skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\n":
        i += 1
    return i


def read_group(text: str, i: int) -> tuple[str, int] | None:
    """The content of the {...} group starting at text[i] (after spaces), and the index
    after it; a single token when there is no brace. None at the end of the text."""
    i = skip_space(text, i)
    if i >= len(text):
        return None
    if text[i] == "{":
        depth = 0
        j = i
        while j < len(text):
            c = text[j]
            if c == "\\":
                j += 2
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1:j], j + 1
            j += 1
        return text[i + 1:], len(text)
    if text[i] == "\\":
        m = re.match(r"\\([A-Za-z@]+\*?|.)", text[i:])
        assert m is not None
        return m.group(0), i + m.end()
    if text[i] in "}]":
        return None
    return text[i], i + 1


def read_optional(text: str, i: int) -> tuple[str | None, int]:
    """The content of a [...] argument at text[i] (after spaces), if there is one."""
    j = skip_space(text, i)
    if j >= len(text) or text[j] != "[":
        return None, i
    depth = 0
    k = j
    while k < len(text):
        c = text[k]
        if c == "\\":
            k += 2
            continue
        if c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
            if depth == 0:
                return text[j + 1:k], k + 1
        k += 1
    return None, i


def find_env(text: str, name: str, start: int = 0) -> tuple[int, int, int, int] | None:
    """(begin, content start, content end, end) of the next \\begin{name}...\\end{name},
    nesting-aware."""
    open_re = re.compile(r"\\begin\s*\{" + re.escape(name) + r"\}")
    tag = re.compile(r"\\(begin|end)\s*\{" + re.escape(name) + r"\}")
    m = open_re.search(text, start)
    if not m:
        return None
    depth = 0
    for t in tag.finditer(text, m.start()):
        depth += 1 if t.group(1) == "begin" else -1
        if depth == 0:
            return m.start(), m.end(), t.start(), t.end()
    return m.start(), m.end(), len(text), len(text)


def top_level_items(body: str) -> list[str]:
    """The text before the first \\item, then each item, ignoring items of nested lists."""
    parts: list[str] = []
    depth = 0
    start = 0
    for m in re.finditer(r"\\(begin|end)\s*\{[^}]*\}|\\item(?![A-Za-z])", body):
        tok = m.group(1)
        if tok == "begin":
            depth += 1
        elif tok == "end":
            depth -= 1
        elif depth == 0:
            parts.append(body[start:m.start()])
            start = m.end()
    parts.append(body[start:])
    return parts


def own_labels(body: str) -> list[str]:
    """Labels of an environment itself, not of equations or floats inside it."""
    outer = re.sub(r"\\begin\s*\{(equation|align|gather|multline|eqnarray|figure|table)"
                   r"(\*?)\}.*?\\end\s*\{\1\2\}", "", body, flags=re.S)
    return [lab.strip() for lab in re.findall(r"\\label\s*\{([^}]*)\}", outer)]


def take_optional(text: str) -> tuple[str | None, str]:
    """A leading [...] argument and the text after it."""
    opt, i = read_optional(text, 0)
    return (opt, text[i:]) if opt is not None else (None, text)


def split_cells(row: str) -> list[str]:
    cells, depth, cur = [], 0, []
    i = 0
    while i < len(row):
        c = row[i]
        if c == "\\" and i + 1 < len(row):
            cur.append(row[i:i + 2])
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if c == "&" and depth == 0:
            cells.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    cells.append("".join(cur))
    return cells


def drop_command(text: str, name: str, nargs: int) -> str:
    pat = re.compile(r"\\" + re.escape(name) + r"(?![A-Za-z])")
    while (m := pat.search(text)) is not None:
        i = m.end()
        for _ in range(nargs):
            g = read_group(text, i)
            if g is None:
                break
            i = g[1]
        text = text[:m.start()] + text[i:]
    return text
