"""A static check of the written repository: names imported from its own modules must exist.

Generated files are written one by one, so a file may import a helper its dependency never
defined. No model call is made; problems are reported in run.json and the README.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

from papercoder.pyparse import parse_python


def _module_of(file: str) -> str | None:
    if not file.endswith(".py"):
        return None
    mod = file[:-3].replace("/", ".")
    return mod[: -len(".__init__")] if mod.endswith(".__init__") else mod


def top_level_names(source: str) -> set[str] | None:
    """Names a module defines or imports at top level; None if it does not parse."""
    try:
        tree = parse_python(source)
        names: set[str] = set()
        _collect(tree.body, names)
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return None
    return names


def _collect(stmts: list[ast.stmt], names: set[str]) -> None:
    for node in stmts:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            # names bound under module-level if/try/with count too
            for field in ("body", "orelse", "finalbody"):
                _collect(getattr(node, field, []) or [], names)
            for handler in getattr(node, "handlers", []) or []:
                _collect(handler.body, names)


def unresolved_imports(code: Mapping[str, str]) -> list[str]:
    """``from module import name`` lines whose module is a repository file lacking ``name``."""
    modules = {m: f for f in code if (m := _module_of(f))}
    defined = {f: top_level_names(src) for f, src in code.items() if f.endswith(".py")}
    problems = []
    for f, src in code.items():
        if not f.endswith(".py") or defined.get(f) is None:
            continue
        try:
            nodes = list(ast.walk(parse_python(src)))
        except (SyntaxError, RecursionError, MemoryError, ValueError):
            continue
        for node in nodes:
            if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                continue
            target = modules.get(node.module)
            names = defined.get(target) if target else None
            if names is None or "*" in [a.name for a in node.names]:
                continue
            missing = [a.name for a in node.names if a.name not in names]
            if missing:
                problems.append(f"{f} imports {', '.join(missing)} from {target}, which does "
                                "not define it")
    return problems
