"""Parsing Python within bounds, shared by every stage that reads model-written code.

A file nested thousands of levels deep would exhaust ``ast.parse`` (RecursionError) or the
memory; :func:`parse_python` refuses it with a SyntaxError first.
"""

from __future__ import annotations

import ast

MAX_CODE_CHARS = 2_000_000
"""The longest source file accepted from one answer."""
MAX_INDENT_DEPTH = 60
"""Deepest indentation (in levels) and bracket nesting accepted in Python source."""


def python_depth(code: str) -> int:
    """A cheap bound on how deep ``code`` nests: the deepest indentation level (4 columns or
    one tab per level) and the deepest bracket nesting, whichever is larger."""
    deepest = depth = 0
    for ch in code:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth = max(depth - 1, 0)
    indent = 0
    for line in code.splitlines():
        stripped = line.lstrip(" \t")
        if stripped and not stripped.startswith("#"):
            lead = line[: len(line) - len(stripped)]
            indent = max(indent, lead.count("\t") + (len(lead.replace("\t", "")) + 3) // 4)
    return max(deepest, indent)


def parse_python(code: str) -> ast.Module:
    """``ast.parse`` within bounds: source nested deeper than MAX_INDENT_DEPTH, longer than
    MAX_CODE_CHARS, or that exhausts the parser raises SyntaxError (never RecursionError or
    MemoryError)."""
    if len(code) > MAX_CODE_CHARS:
        raise SyntaxError(f"the source is {len(code):,} characters long")
    depth = python_depth(code)
    if depth > MAX_INDENT_DEPTH:
        raise SyntaxError(f"the source nests {depth} levels deep, over the limit of "
                          f"{MAX_INDENT_DEPTH}")
    try:
        return ast.parse(code)
    except (RecursionError, MemoryError):
        raise SyntaxError("the source is too deeply nested to parse") from None
    except ValueError as e:  # e.g. null bytes
        raise SyntaxError(str(e)) from None
