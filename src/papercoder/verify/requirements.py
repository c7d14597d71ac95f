"""Which pip distributions a repository's imports need, and whether requirements.txt has them.

Import names map to distributions through the packaged table (``data/import_names.yaml``,
for packages that may not be installed) and the installed distributions' own metadata
(``importlib.metadata.packages_distributions``). Standard-library modules
(``sys.stdlib_module_names``) and the repository's own modules are left out.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Mapping
from functools import lru_cache
from importlib import metadata, resources

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from papercoder.pyparse import parse_python


@lru_cache(maxsize=1)
def import_table() -> dict[str, list[str]]:
    text = resources.files("papercoder.verify").joinpath("data/import_names.yaml").read_text(
        encoding="utf-8")
    data = yaml.safe_load(text) or {}
    return {str(k): [str(x) for x in v] for k, v in data.items()}


@lru_cache(maxsize=1)
def _installed_map() -> dict[str, list[str]]:
    try:
        return {k: list(v) for k, v in metadata.packages_distributions().items()}
    except Exception:  # noqa: BLE001 - broken metadata must not stop the checks
        return {}


def distributions_for(module: str) -> list[str]:
    """Canonical distribution names that may provide top-level ``module`` (never empty)."""
    names = list(import_table().get(module, [])) + _installed_map().get(module, [])
    names.append(module)  # most packages share their import name
    out: list[str] = []
    for n in names:
        c = canonicalize_name(n)
        if c not in out:
            out.append(c)
    return out


def local_modules(files: Mapping[str, str] | list[str]) -> set[str]:
    """Top-level names the repository itself provides (modules and package folders)."""
    out: set[str] = set()
    for f in files:
        first = f.split("/", 1)[0]
        if f.endswith(".py"):
            out.add(first[:-3] if "/" not in f else first)
        elif "/" in f:
            out.add(first)
    return out


def _optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """An import inside ``try: ... except ImportError`` (or a bare except) is optional."""
    cur = node
    while cur in parents:
        par = parents[cur]
        if isinstance(par, ast.Try) and cur in par.body:
            for h in par.handlers:
                names = [h.type] if not isinstance(h.type, ast.Tuple) else list(h.type.elts)
                if h.type is None or any(isinstance(t, ast.Name) and t.id in (
                        "ImportError", "ModuleNotFoundError", "Exception") for t in names):
                    return True
        cur = par
    return False


def imported_modules(source: str) -> list[tuple[str, int]]:
    """(top-level module, line) of each absolute, non-optional import in ``source``."""
    try:
        tree = parse_python(source)
    except SyntaxError:
        return []
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            mods = [node.module]
        else:
            continue
        if _optional(node, parents):
            continue
        out += [(m.split(".")[0], node.lineno) for m in mods]
    return out


def parse_requirements(text: str) -> tuple[set[str], list[str]]:
    """Canonical names required by a requirements.txt, and the lines that are not specs."""
    names: set[str] = set()
    bad: list[str] = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            continue  # pip options (-r, -c, --index-url): not ours to judge
        try:
            names.add(canonicalize_name(Requirement(line).name))
        except InvalidRequirement:
            m = re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*", line)
            bad.append(line)
            if m:
                names.add(canonicalize_name(m.group(0)))
    return names, bad


def missing_requirements(code: Mapping[str, str], requirements_text: str) -> list[dict]:
    """Findings for third-party imports that requirements.txt does not cover."""
    local = local_modules(list(code))
    required, bad = parse_requirements(requirements_text)
    findings: list[dict] = []
    for line in bad:
        findings.append({"file": "requirements.txt", "line": None, "kind": "requirement",
                         "message": f"'{line}' is not a valid pip requirement"})
    seen: set[str] = set()
    for f in sorted(code):
        if not f.endswith(".py"):
            continue
        for mod, lineno in imported_modules(code[f]):
            if mod in seen or mod in local or mod in sys.stdlib_module_names or \
                    mod == "__future__":
                continue
            dists = distributions_for(mod)
            if not any(d in required for d in dists):
                seen.add(mod)
                findings.append({
                    "file": f, "line": lineno, "kind": "requirement",
                    "message": f"imports {mod}, but requirements.txt lists no package that "
                               f"provides it (add {dists[0]})"})
    return findings
