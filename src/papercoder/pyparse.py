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
MAX_AST_DEPTH = 150
"""Deepest syntax tree accepted: chains without brackets (``1+1+...``, ``-----x``, ``a.b.c...``,
``f()()()...``) nest the tree without indenting, and tools that walk it recursively (pyflakes,
``ast.unparse``) run out of stack long before the parser does."""


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
    MAX_CODE_CHARS, that exhausts the parser, or whose tree is deeper than MAX_AST_DEPTH raises
    SyntaxError (never RecursionError or MemoryError)."""
    if len(code) > MAX_CODE_CHARS:
        raise SyntaxError(f"the source is {len(code):,} characters long")
    depth = python_depth(code)
    if depth > MAX_INDENT_DEPTH:
        raise SyntaxError(f"the source nests {depth} levels deep, over the limit of "
                          f"{MAX_INDENT_DEPTH}")
    try:
        tree = ast.parse(code)
    except (RecursionError, MemoryError):
        raise SyntaxError("the source is too deeply nested to parse") from None
    except ValueError as e:  # e.g. null bytes
        raise SyntaxError(str(e)) from None
    deep, line = ast_depth(tree)
    if deep > MAX_AST_DEPTH:
        err = SyntaxError(f"an expression nests {deep} levels deep, over the limit of "
                          f"{MAX_AST_DEPTH}; split it into steps")
        err.lineno = line
        raise err
    return tree


def ast_depth(tree: ast.AST) -> tuple[int, int | None]:
    """The depth of the deepest node of ``tree`` and its line (iterative: any depth)."""
    deepest, line = 0, None
    stack: list[tuple[ast.AST, int]] = [(tree, 1)]
    while stack:
        node, d = stack.pop()
        if d > deepest:
            deepest, line = d, getattr(node, "lineno", line)
        stack.extend((kid, d + 1) for kid in ast.iter_child_nodes(node))
    return deepest, line
