"""SEARCH/REPLACE edit blocks from the model: parsing, matching and applying.

An answer holds blocks like::

    path/to/file.py
    <<<<<<< SEARCH
    exact lines of the current file
    =======
    the lines that replace them
    >>>>>>> REPLACE

An empty SEARCH creates a file that does not exist yet. Matching is exact first, then
tolerant of whitespace (indentation re-based onto the matched lines). A SEARCH that matches
nothing or more than once is a :class:`FormatError` that names the block, so the model can
answer again. Paths go through :func:`papercoder.outdir.paths.clean_path`; every edit of an
answer is checked before any file is written.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from papercoder.errors import FormatError, UnsafePathError
from papercoder.outdir.paths import clean_path, write_inside

_BLOCK = re.compile(
    r"^(?P<path>[^\n]*)\n(?:[ \t]*```[^\n]*\n)?[ \t]*<{5,9} ?SEARCH[^\n]*\n"
    r"(?P<search>.*?)^[ \t]*={5,9}[ \t]*\n(?P<replace>.*?)^[ \t]*>{5,9} ?REPLACE[^\n]*$",
    re.M | re.S)
MAX_FILE_BYTES = 1_000_000
MAX_FILES = 30


@dataclass
class Edit:
    path: str
    search: str
    replace: str


def parse_edits(text: str) -> list[Edit]:
    """The edit blocks of an answer, in order; FormatError when there are none or a path is
    unusable."""
    edits: list[Edit] = []
    for m in _BLOCK.finditer(text):
        raw = m.group("path").strip().strip("*`#: ").removeprefix("File").strip(" :`")
        if not raw:
            raise FormatError("An edit block has no file path on the line before "
                              "'<<<<<<< SEARCH'. Put the file's path alone on that line.",
                              user_message="an edit block had no file path")
        try:
            path = clean_path(raw)
        except UnsafePathError as e:
            raise FormatError(f"The edit path {raw!r} is not allowed ({e}). Use paths "
                              "relative to the repository root.",
                              user_message=f"an edit named an unsafe path {raw!r}") from None
        edits.append(Edit(path, m.group("search"), m.group("replace")))
    if not edits:
        if "SEARCH" in text or "REPLACE" in text:
            raise FormatError(
                "Your edit blocks could not be read. Each block is the file path on its own "
                "line, then '<<<<<<< SEARCH', the current lines, '=======', the new lines, "
                "and '>>>>>>> REPLACE', each marker on its own line.",
                user_message="the edit blocks were malformed")
        raise FormatError("Your answer has no SEARCH/REPLACE edit blocks. Fix the problem "
                          "with edit blocks in the format described.",
                          user_message="the answer held no edit blocks")
    return edits


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _tolerant(content: str, search: str, replace: str) -> tuple[int, str | None]:
    """(number of whitespace-tolerant matches, new content if exactly one)."""
    lines = _lines(content)
    s_lines = _lines(search)
    while s_lines and not s_lines[0].strip():
        s_lines.pop(0)
    while s_lines and not s_lines[-1].strip():
        s_lines.pop()
    if not s_lines:
        return 0, None
    want = [x.strip() for x in s_lines]
    hits = [i for i in range(len(lines) - len(want) + 1)
            if all(lines[i + j].strip() == want[j] for j in range(len(want)))]
    if len(hits) != 1:
        return len(hits), None
    i = hits[0]
    # Indentation the model used -> indentation the file has, from the matched lines.
    indents: dict[str, str] = {}
    for j, x in enumerate(s_lines):
        if x.strip():
            indents.setdefault(_indent(x), _indent(lines[i + j]))
    out = []
    for r in _lines(replace):
        if r.strip():
            ind = _indent(r)
            if ind in indents:
                r = indents[ind] + r[len(ind):]
            else:
                base = max((k for k in indents if ind.startswith(k)), key=len, default=None)
                if base is not None:
                    r = indents[base] + r[len(base):]
        out.append(r)
    if out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    return 1, "".join(lines[:i] + out + lines[i + len(want):])


def apply_to(files: Mapping[str, str], edits: list[Edit]) -> dict[str, str]:
    """The new contents of the files the edits touch (nothing written). FormatError lists every
    block that could not be applied."""
    state: dict[str, str | None] = {}
    problems: list[str] = []
    for n, e in enumerate(edits, 1):
        current = state[e.path] if e.path in state else files.get(e.path)
        label = f"Edit {n} ({e.path})"
        if not e.search.strip():
            if current is not None and current.strip():
                problems.append(f"{label} has an empty SEARCH but {e.path} already exists; "
                                "quote the lines to change in SEARCH")
                continue
            state[e.path] = e.replace
            continue
        if current is None:
            problems.append(f"{label}: {e.path} does not exist; to create it, leave SEARCH "
                            "empty")
            continue
        count = current.count(e.search)
        if count == 1:
            state[e.path] = current.replace(e.search, e.replace, 1)
            continue
        if count > 1:
            problems.append(f"{label}: the SEARCH text occurs {count} times; include more "
                            "surrounding lines so that it matches exactly once")
            continue
        hits, new = _tolerant(current, e.search, e.replace)
        if new is not None:
            state[e.path] = new
        elif hits > 1:
            problems.append(f"{label}: the SEARCH text matches {hits} places (ignoring "
                            "whitespace); include more surrounding lines")
        else:
            problems.append(f"{label}: the SEARCH text does not match {e.path}; copy the "
                            "current lines exactly, as shown")
    if problems:
        raise FormatError("Some edits could not be applied: " + "; ".join(problems)
                          + ". Send all the edits again, corrected.",
                          user_message="edits did not match: " + "; ".join(problems)[:300])
    out = {p: c for p, c in state.items() if c is not None}
    if len(out) > MAX_FILES:
        raise FormatError(f"Your edits touch {len(out)} files; change at most {MAX_FILES} in "
                          "one answer, starting with the cause of the failure.",
                          user_message=f"the edits touched {len(out)} files")
    for p, c in out.items():
        if len(c.encode("utf-8", "replace")) > MAX_FILE_BYTES:
            raise FormatError(f"The edit makes {p} larger than 1 MB; keep files small.",
                              user_message=f"an edit made {p} too large")
    return out


def unified_diff(before: Mapping[str, str], after: Mapping[str, str]) -> str:
    parts = []
    for p in sorted(set(before) | set(after)):
        a, b = before.get(p), after.get(p)
        if a == b:
            continue
        parts.append("".join(difflib.unified_diff(
            _lines(a or ""), _lines(b or ""), fromfile="/dev/null" if a is None else f"a/{p}",
            tofile=f"b/{p}", n=2)))
    return "".join(x if x.endswith("\n") else x + "\n" for x in parts)


def write_files(root: Path, new: Mapping[str, str]) -> None:
    for p, c in new.items():
        write_inside(root, p, c)
