"""Names imported across a repository's own modules, resolved the way Python resolves them.

``from models import BaseVAE`` is judged against what ``models`` really provides: its
top-level names, the names its star imports bring in (followed through the repository, with
``__all__`` respected), and, for a package, its submodules. A problem is certain only when the
module is found unambiguously in the repository and everything it provides is known (no star
import from outside the repository, no module ``__getattr__``, no ``globals()`` writes);
otherwise it is a note.

Two users: the pipeline (generated files are written one by one, so a file may import a helper
its dependency never defined; certain problems go to run.json warnings and the README, no model
call is made) and verify's static checks (``verify/localimports.py``).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field

from papercoder.pyparse import parse_python

MAX_STAR_CHAIN = 100
"""Star imports followed through at most this many modules (deeper: not certain)."""


@dataclass
class ModuleInfo:
    file: str
    names: set[str] = field(default_factory=set)
    exported: list[str] | None = None
    """A literal ``__all__``, when the module has one."""
    stars: list[tuple[int, str]] = field(default_factory=list)
    """(level, module) of each ``from M import *``."""
    dynamic: bool = False


@dataclass
class LocalImportProblem:
    file: str
    line: int
    module_file: str
    missing: list[str]
    certain: bool
    why: str = ""


def module_name(file: str) -> str | None:
    if not file.endswith(".py"):
        return None
    mod = file[:-3].replace("/", ".")
    return mod[: -len(".__init__")] if mod.endswith(".__init__") else mod


def _collect(stmts: list[ast.stmt], info: ModuleInfo) -> None:
    for node in stmts:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            info.names.add(node.name)
            if node.name == "__getattr__":
                info.dynamic = True
        elif isinstance(node, ast.Import):
            info.names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                if a.name == "*":
                    info.stars.append((node.level, node.module or ""))
                else:
                    info.names.add(a.asname or a.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                info.names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
                if isinstance(t, ast.Name) and t.id == "__all__" and isinstance(
                        node, ast.Assign) and isinstance(node.value, (ast.List, ast.Tuple)):
                    vals = [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
                    if all(isinstance(v, str) for v in vals):
                        info.exported = [str(v) for v in vals]
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            info.names.update(n.id for n in ast.walk(getattr(node, "target", node))
                              if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
            _collect(node.body + node.orelse, info)
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.AsyncWith)) or \
                type(node).__name__ in ("TryStar", "Match"):
            for fld in ("body", "orelse", "finalbody"):
                _collect(getattr(node, fld, []) or [], info)
            for handler in getattr(node, "handlers", []) or []:
                if handler.name:
                    info.names.add(handler.name)
                _collect(handler.body, info)
            for case in getattr(node, "cases", []) or []:
                _collect(case.body, info)
    for node in stmts:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Global):
                info.names.update(sub.names)
            elif isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name):
                info.names.add(sub.target.id)
            elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and (
                    sub.func.id in ("globals", "exec") or (
                        sub.func.id == "setattr" and sub.args and not (
                            isinstance(sub.args[0], ast.Name)
                            and sub.args[0].id in ("self", "cls")))):
                info.dynamic = True


class Resolver:
    def __init__(self, code: Mapping[str, str]) -> None:
        self.trees: dict[str, ast.Module] = {}
        for f, src in code.items():
            if f.endswith(".py"):
                try:
                    self.trees[f] = parse_python(src)
                except SyntaxError:
                    continue
        self.files = set(code)
        self.by_module = {m: f for f in code if (m := module_name(f))}
        self._info: dict[str, ModuleInfo] = {}

    def info(self, file: str) -> ModuleInfo:
        if file not in self._info:
            info = ModuleInfo(file)
            tree = self.trees.get(file)
            if tree is None:
                info.dynamic = True
            else:
                _collect(tree.body, info)
            self._info[file] = info
        return self._info[file]

    def candidates(self, importer: str, level: int, module: str) -> list[str]:
        """Repository files that ``from <level dots><module> import ...`` in ``importer``
        may load: the script's own folder and the repository root for absolute imports."""
        here = importer.rsplit("/", 1)[0] if "/" in importer else ""
        if level:
            parts = here.split("/") if here else []
            if level - 1 > len(parts):
                return []
            base = parts[: len(parts) - (level - 1)]
            dotted = ".".join([*base, *module.split(".")] if module else base)
            f = self.by_module.get(dotted) if dotted else self.by_module.get("__init__")
            return [f] if f else []
        out: list[str] = []
        for prefix in ([here] if here else []) + [""]:
            dotted = (prefix.replace("/", ".") + "." if prefix else "") + module
            f = self.by_module.get(dotted)
            if f and f not in out:
                out.append(f)
        return out

    def provided(self, file: str, seen: set[str] | None = None) -> tuple[set[str], bool]:
        """Names ``from <file's module> import NAME`` can take, and whether that set is
        complete."""
        seen = seen if seen is not None else set()
        if file in seen:
            return set(), True
        if len(seen) >= MAX_STAR_CHAIN:  # a chain this long is not followed: unknown
            return set(), False
        seen.add(file)
        info = self.info(file)
        names = set(info.names)
        complete = not info.dynamic
        for level, mod in info.stars:
            targets = self.candidates(file, level, mod)
            if len(targets) != 1:
                complete = False
                continue
            sub, ok = self.provided(targets[0], seen)
            sub_info = self.info(targets[0])
            if sub_info.exported is not None:
                names.update(sub_info.exported)
            else:
                names.update(n for n in sub if not n.startswith("_"))
            complete = complete and ok
        if file.endswith("__init__.py"):
            folder = file.rsplit("/", 1)[0] + "/" if "/" in file else ""
            for f in self.files:
                if f.startswith(folder) and f != file:
                    rest = f[len(folder):]
                    head = rest.split("/", 1)[0]
                    if rest.endswith(".py") or "/" in rest:
                        names.add(head[:-3] if head.endswith(".py") else head)
        return names, complete


def check_local_imports(code: Mapping[str, str]) -> list[LocalImportProblem]:
    r = Resolver(code)
    out: list[LocalImportProblem] = []
    for f in sorted(r.trees):
        for node in ast.walk(r.trees[f]):
            if not isinstance(node, ast.ImportFrom):
                continue
            if any(a.name == "*" for a in node.names):
                continue
            targets = r.candidates(f, node.level, node.module or "")
            if not targets:
                continue
            names, complete = r.provided(targets[0])
            missing = [a.name for a in node.names if a.name not in names]
            if not missing:
                continue
            why = ""
            if len(targets) > 1:
                why = f"{node.module} may also be {targets[1]}"
                others = [n for n in missing if n not in r.provided(targets[1])[0]]
                if not others:
                    continue
            elif not complete:
                why = f"{targets[0]} defines names dynamically or star-imports from outside " \
                      "the repository"
            out.append(LocalImportProblem(f, node.lineno, targets[0], missing,
                                          certain=not why, why=why))
    return out


def unresolved_imports(code: Mapping[str, str]) -> list[str]:
    """Certain problems as sentences: ``from module import name`` where the module is a
    repository file that provably lacks ``name``."""
    return [f"{p.file} imports {', '.join(p.missing)} from {p.module_file}, which does not "
            "define it" for p in check_local_imports(code) if p.certain]
