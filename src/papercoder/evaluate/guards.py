"""Structural facts about a repository, and the guards that score it without a judge.

An empty repository (no source code) or one whose functions are all stubs gets the floor
score with no model call: a judge is known to give an empty repository a high score.
"""

from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from papercoder.evaluate.files import RepoFile
from papercoder.pyparse import parse_python

_TODO = re.compile(r"\b(todo|fixme|implement (me|this)|not implemented)\b", re.I)
MAX_SCRIPT_STATEMENTS = 3
"""Module-level statements (beyond imports, definitions, constants and a main guard) that
make a repository more than stubs even when every function is one."""


@dataclass
class Facts:
    files: int = 0
    source_files: int = 0
    lines: int = 0
    source_lines: int = 0
    python_files: int = 0
    functions: int = 0
    stub_functions: int = 0
    script_statements: int = 0
    other_source_files: int = 0
    """Source files in languages other than Python and shell (not checked for stubs)."""
    top_statements: int = 0
    """Top-level Python statements other than imports, docstrings and ``pass``."""
    parse_errors: list[str] = field(default_factory=list)
    """``path:line: message`` for every Python file that does not parse."""
    stub_names: list[str] = field(default_factory=list)

    @property
    def stub_share(self) -> float:
        return self.stub_functions / self.functions if self.functions else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stub_share"] = round(self.stub_share, 3)
        d["stub_names"] = self.stub_names[:50]
        return d


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and \
        isinstance(node.value.value, str)


def _is_stub_stmt(node: ast.stmt) -> bool:
    if isinstance(node, ast.Pass):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        v = node.value.value
        return v is Ellipsis or (isinstance(v, str) and bool(_TODO.search(v)))
    if isinstance(node, ast.Raise) and node.exc is not None:
        exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"
    return False


def is_stub(fn: ast.FunctionDef | ast.AsyncFunctionDef, source_lines: list[str]) -> bool:
    """A body that is only ``pass``, ``...``, ``raise NotImplementedError``, a TODO, or a
    docstring; a body whose only other statement is ``return`` / ``return None`` next to a
    TODO comment counts too."""
    body = list(fn.body)
    if body and _is_docstring(body[0]) and not _TODO.search(body[0].value.value):  # type: ignore[attr-defined]
        body = body[1:]
    if all(_is_stub_stmt(s) for s in body):
        return True
    start, end = fn.lineno, getattr(fn, "end_lineno", fn.lineno) or fn.lineno
    text = "\n".join(source_lines[start - 1:end])
    trivial = all(_is_stub_stmt(s) or (isinstance(s, ast.Return) and (
        s.value is None or (isinstance(s.value, ast.Constant) and s.value.value is None)))
        for s in body)
    return trivial and bool(_TODO.search(text))


def _script_statement(node: ast.stmt) -> bool:
    """Module-level code that does work (not an import, definition, constant or docstring)."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                         ast.ClassDef, ast.Pass)) or _is_docstring(node):
        return False
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and (
            node.value is None or isinstance(node.value, (ast.Constant, ast.List, ast.Tuple,
                                                          ast.Dict, ast.Set, ast.Name))):
        return False
    if isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and \
            isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__":
        return False
    return True


def analyse(files: list[RepoFile]) -> Facts:
    f = Facts(files=len(files))
    for rf in files:
        f.lines += rf.lines
        if rf.kind == "source":
            f.source_files += 1
            f.source_lines += sum(1 for ln in rf.text.splitlines() if ln.strip())
            if not rf.path.endswith((".py", ".sh", ".bash")):
                f.other_source_files += 1
        if not rf.path.endswith(".py"):
            continue
        f.python_files += 1
        try:
            tree = parse_python(rf.text)
        except SyntaxError as e:
            line = getattr(e, "lineno", None)
            f.parse_errors.append(f"{rf.path}:{line or '?'}: {getattr(e, 'msg', str(e))}")
            continue
        lines = rf.text.splitlines()
        f.script_statements += sum(1 for n in tree.body if _script_statement(n))
        f.top_statements += sum(1 for n in tree.body if not (
            isinstance(n, (ast.Import, ast.ImportFrom, ast.Pass)) or _is_docstring(n)))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                f.functions += 1
                if is_stub(node, lines):
                    f.stub_functions += 1
                    f.stub_names.append(f"{rf.path}:{node.name}")
    return f


def guard(facts: Facts) -> str | None:
    """``"empty"``, ``"all-stubs"`` or None (grade normally)."""
    if facts.source_lines == 0:
        return "empty"
    python_only = facts.other_source_files == 0 and not facts.parse_errors
    if python_only and facts.functions == 0 and facts.top_statements == 0:
        return "empty"
    if (facts.functions and facts.stub_functions == facts.functions and not facts.parse_errors
            and facts.script_statements <= MAX_SCRIPT_STATEMENTS
            and facts.other_source_files == 0):
        return "all-stubs"
    return None


def describe_guard(kind: str) -> str:
    if kind == "empty":
        return ("The repository holds no source code (only documentation, configuration or "
                "nothing), so it gets the floor score without asking the judge.")
    return ("Every function in the repository is a stub (pass, ..., raise "
            "NotImplementedError, a TODO or only a docstring), so it gets the floor score "
            "without asking the judge.")
