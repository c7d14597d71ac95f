"""Static checks of a generated repository: nothing is executed.

Each check returns findings ``{"file", "line", "kind", "message"}``. Kinds:
``syntax``, ``pyflakes``, ``import`` (a name imported from a repository module that does not
define it), ``requirement``, ``config``, ``reproduce``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

import yaml
from pyflakes import checker as pyflakes_checker
from pyflakes import messages as pyflakes_messages

from papercoder.crosscheck import unresolved_imports
from papercoder.pyparse import parse_python
from papercoder.verify.requirements import missing_requirements

Finding = dict[str, Any]

# pyflakes messages that mean the code fails when it runs (warnings such as unused imports
# are left out).
_ERRORS = tuple(getattr(pyflakes_messages, n) for n in (
    "UndefinedName", "UndefinedLocal", "UndefinedExport", "DuplicateArgument",
    "ReturnOutsideFunction", "YieldOutsideFunction", "ContinueOutsideLoop",
    "BreakOutsideLoop", "DefaultExceptNotLast", "TwoStarredExpressions",
    "TooManyExpressionsInStarredAssignment", "ForwardAnnotationSyntaxError",
    "StringDotFormatMissingArgument", "PercentFormatMissingArgument",
) if hasattr(pyflakes_messages, n))

CONFIG_NAMES = {"config", "cfg", "conf", "configs", "hparams", "hp", "params"}
# Attribute names any mapping or namespace answers.
_GENERIC_ATTRS = {"get", "items", "keys", "values", "update", "copy", "pop", "setdefault",
                  "__dict__", "to_dict", "dict", "model_dump", "__class__", "__getitem__"}


def finding(file: str, line: int | None, kind: str, message: str) -> Finding:
    return {"file": file, "line": line, "kind": kind, "message": message}


def check_syntax(code: Mapping[str, str]) -> tuple[list[Finding], dict[str, ast.Module]]:
    findings, trees = [], {}
    for f, src in sorted(code.items()):
        if not f.endswith(".py"):
            continue
        try:
            trees[f] = parse_python(src)
        except SyntaxError as e:
            findings.append(finding(f, e.lineno, "syntax", f"does not parse: {e.msg}"))
    return findings, trees


def check_pyflakes(trees: Mapping[str, ast.Module]) -> list[Finding]:
    out = []
    for f, tree in trees.items():
        w = pyflakes_checker.Checker(tree, filename=f)
        for m in sorted(w.messages, key=lambda m: (m.lineno, m.col)):
            if isinstance(m, _ERRORS):
                out.append(finding(f, m.lineno, "pyflakes", m.message % m.message_args))
    return out


# -- configuration keys ---------------------------------------------------------------------
def _yaml_keys(data: Any) -> tuple[set[str], set[tuple[str, ...]]]:
    """Every key at any depth, and every key path (as tuples, from any node)."""
    keys: set[str] = set()
    paths: set[tuple[str, ...]] = set()

    def walk(node: Any) -> list[tuple[str, ...]]:
        here: list[tuple[str, ...]] = []
        if isinstance(node, dict):
            for k, v in node.items():
                k = str(k)
                keys.add(k)
                here.append((k,))
                here += [(k, *rest) for rest in walk(v)]
        elif isinstance(node, list):
            for v in node:
                walk(v)
        paths.update(here)
        return here

    walk(data)
    return keys, paths


def _config_root(node: ast.AST) -> bool:
    """``config``, ``cfg``, ``self.config``, ``args.cfg``... or a ``*_config``/``*_cfg`` name."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return "config" in node.func.id.lower()  # Config().x
    if isinstance(node, ast.Name):
        name = node.id
    elif isinstance(node, ast.Attribute):
        name = node.attr
    else:
        return False
    low = name.lower()
    return low in CONFIG_NAMES or low.endswith(("_config", "_cfg", "_conf"))


def _subscript_chain(node: ast.Subscript) -> tuple[ast.AST, list[str]] | None:
    keys: list[str] = []
    cur: ast.AST = node
    while isinstance(cur, ast.Subscript):
        sl = cur.slice
        if not (isinstance(sl, ast.Constant) and isinstance(sl.value, str)):
            return None
        keys.insert(0, sl.value)
        cur = cur.value
    return cur, keys


def _class_attributes(trees: Mapping[str, ast.Module]) -> tuple[set[str], bool]:
    """Attributes defined by the repository's config classes; True if one is dynamic
    (``setattr``, ``__dict__.update``, ``__getattr__``) and so cannot be judged."""
    attrs: set[str] = set()
    dynamic = False
    for tree in trees.values():
        for cls in ast.walk(tree):
            if not isinstance(cls, ast.ClassDef) or "config" not in cls.name.lower():
                continue
            for stmt in cls.body:  # class-level names: fields, constants, methods
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    attrs.add(stmt.name)
                    if stmt.name in ("__getattr__", "__getattribute__"):
                        dynamic = True
                elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    attrs.add(stmt.target.id)
                elif isinstance(stmt, ast.Assign):
                    attrs.update(n.id for t in stmt.targets for n in ast.walk(t)
                                 if isinstance(n, ast.Name))
            for node in ast.walk(cls):  # self.x = ... in methods (not their local names)
                targets: list[ast.expr] = []
                if isinstance(node, ast.Assign):
                    targets = node.targets
                elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                    targets = [node.target]
                for t in targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) \
                                and n.value.id == "self":
                            attrs.add(n.attr)
                if isinstance(node, ast.Call):
                    fn = node.func
                    if isinstance(fn, ast.Name) and fn.id == "setattr":
                        dynamic = True
                    if isinstance(fn, ast.Attribute) and fn.attr == "update" and \
                            isinstance(fn.value, ast.Attribute) and fn.value.attr == "__dict__":
                        dynamic = True
    return attrs, dynamic


def check_config(code: Mapping[str, str], trees: Mapping[str, ast.Module]) -> list[Finding]:
    """Keys read as ``config["a"]["b"]`` must exist in config.yaml (as a path from some
    section); attributes read as ``config.x`` must be defined by a config class or be a key
    of config.yaml. Reads with a default (``.get``) are not judged."""
    text = code.get("config.yaml")
    try:
        data = yaml.safe_load(text) if text is not None else None
    except RecursionError:
        return [finding("config.yaml", None, "config", "is not valid YAML (nested too deeply)")]
    except yaml.YAMLError as e:
        return [finding("config.yaml", None, "config", f"is not valid YAML ({e})".replace(
            "\n", " "))]
    keys, paths = _yaml_keys(data) if isinstance(data, dict) else (set(), set())
    attrs, dynamic = _class_attributes(trees)
    has_classes = bool(attrs)
    out: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for f, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and keys:
                chain = _subscript_chain(node)
                if chain is None or not _config_root(chain[0]):
                    continue
                path = tuple(chain[1])
                if path in paths or (f, ".".join(path)) in seen:
                    continue
                # Report each chain once, at its longest form.
                seen.update((f, ".".join(path[:i])) for i in range(1, len(path) + 1))
                out.append(finding(f, node.lineno, "config",
                                   f"reads config key {'.'.join(path)!r}, which config.yaml "
                                   "does not define"))
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and \
                    _config_root(node.value) and not dynamic and (keys or has_classes):
                name = node.attr
                if name in attrs or name in keys or name in _GENERIC_ATTRS or \
                        name.startswith("__") or (f, name) in seen:
                    continue
                seen.add((f, name))
                where = "the config class" + (" or config.yaml" if keys else "") \
                    if has_classes else "config.yaml"
                out.append(finding(f, node.lineno, "config",
                                   f"reads config attribute {name!r}, which {where} does "
                                   "not define"))
    return out


# -- reproduce.sh and smoke mode --------------------------------------------------------------
def check_reproduce(code: Mapping[str, str], smoke_commands: list[str]) -> list[Finding]:
    out = []
    if "reproduce.sh" not in code:
        out.append(finding("reproduce.sh", None, "reproduce",
                           "is missing: add a bash script at the repository root that runs "
                           "the experiments and passes its arguments on (--smoke)"))
    wired = any("--smoke" in src or "smoke" in re.findall(r"[\w]+", src)
                for f, src in code.items() if f.endswith((".py", ".sh")))
    if not wired:
        out.append(finding("main.py" if "main.py" in code else "reproduce.sh", None,
                           "reproduce", "no entry point accepts --smoke: add a smoke mode "
                           "(tiny sizes, few steps, seeded, synthetic data when the real "
                           "data is absent, metrics to results/metrics.json)"))
    for cmd in smoke_commands:
        for word in cmd.split():
            w = word.strip("'\"")
            if w.endswith((".py", ".sh")) and "/" not in w.lstrip("./") and \
                    w.lstrip("./") not in code:
                out.append(finding(w.lstrip("./"), None, "reproduce",
                                   f"the smoke command {cmd!r} runs {w}, which does not exist"))
    return out


def run_static(code: Mapping[str, str], smoke_commands: list[str] | None = None) \
        -> list[Finding]:
    """All static checks over ``code`` (repository path -> text)."""
    findings, trees = check_syntax(code)
    findings += check_pyflakes(trees)
    parsed = {f: s for f, s in code.items() if f in trees or not f.endswith(".py")}
    for problem in unresolved_imports(parsed):
        file = problem.split(" ", 1)[0]
        findings.append(finding(file, None, "import", problem[len(file) + 1:]))
    findings += missing_requirements(parsed, code.get("requirements.txt", ""))
    findings += check_config(code, trees)
    findings += check_reproduce(code, smoke_commands or [])
    return findings


def read_repo(repo: Any) -> dict[str, str]:
    """Text files of a repository folder (no links followed, caches and hidden dirs skipped)."""
    from pathlib import Path

    root = Path(repo)
    out: dict[str, str] = {}
    if not root.is_dir():
        return out
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if any(part.startswith(".") or part == "__pycache__" for part in rel.split("/")):
            continue
        if p.is_symlink() or not p.is_file() or p.stat().st_size > 2_000_000:
            continue
        try:
            out[rel] = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
    return out
