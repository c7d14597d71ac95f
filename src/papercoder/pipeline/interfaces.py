"""Public interfaces of Python files (signatures and docstrings), extracted with ``ast``."""

from __future__ import annotations

import ast

from papercoder.pyparse import parse_python


def _sig(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    ret = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    return f"{prefix} {node.name}({ast.unparse(node.args)}){ret}:"


def _doc(node: ast.AST, indent: str) -> list[str]:
    doc = ast.get_docstring(node)  # type: ignore[arg-type]
    if not doc:
        return []
    first = doc.strip().split("\n\n")[0].strip().replace("\n", "\n" + indent)
    return [f'{indent}"""{first}"""']


def _def(node: ast.FunctionDef | ast.AsyncFunctionDef, indent: str) -> list[str]:
    return [indent + _sig(node)] + (_doc(node, indent + "    ") or [indent + "    ..."])


def public_interface(source: str) -> str:
    """Imports, constants, classes and functions with signatures and first docstring
    paragraphs; bodies dropped. Unparseable or too deeply nested source returns a one-line
    note (never an exception)."""
    try:
        tree = parse_python(source)
    except SyntaxError as e:
        where = f"syntax error at line {e.lineno}" if e.lineno else e.msg
        return f"# (interface unavailable: {where})"
    try:
        return _interface(tree)
    except (RecursionError, MemoryError, ValueError):
        return "# (interface unavailable: the source is too deeply nested)"


def _interface(tree: ast.Module) -> str:
    out: list[str] = _doc(tree, "")
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(ast.unparse(node))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [ast.unparse(t) for t in targets]
            if all(n.isupper() or n.lstrip("_").isupper() for n in names) or isinstance(
                    node, ast.AnnAssign):
                text = ast.unparse(node)
                out.append(text if len(text) < 120 else text[:117] + "...")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if not node.name.startswith("_"):
                out += _def(node, "")
        elif isinstance(node, ast.ClassDef):
            bases = ", ".join(ast.unparse(b) for b in node.bases)
            out.append(f"class {node.name}({bases}):" if bases else f"class {node.name}:")
            body = _doc(node, "    ")
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                        not item.name.startswith("_") or item.name == "__init__"):
                    body += _def(item, "    ")
                elif isinstance(item, ast.AnnAssign):
                    body.append("    " + ast.unparse(item))
            out += body or ["    ..."]
    return "\n".join(out)
