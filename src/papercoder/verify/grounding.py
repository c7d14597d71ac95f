"""API grounding: names and keyword arguments the code takes from third-party packages,
checked against the versions installed in verify's environment.

``from torchtext.data import Field``, ``F.gelu_new(...)`` after ``import torch.nn.functional
as F``, ``transformers.AutoModel.from_pretained`` and ``nn.Linear(3, 4, bais=True)`` are
collected statically (:func:`collect_queries`), then answered by a small inspector script
(``inspector.py``) that the environment's interpreter runs inside the sandbox, like the
generated code (importing a package runs its code). Its answer is treated as hostile: one
JSON document of bounded size, every field checked. A missing name or keyword is a certain
finding with the real alternatives ("did you mean"); a module that does not import, or a
signature that is not known or takes ``**kwargs``, gives nothing.
"""

from __future__ import annotations

import ast
import json
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from papercoder.pyparse import parse_python
from papercoder.verify.requirements import _guarded, local_modules
from papercoder.verify.sandbox import Sandbox

MAX_QUERIES = 3000
MAX_ANSWER = 4_000_000
MARK = "PAPERCODER-GROUNDING:"


@dataclass
class Query:
    path: str
    """Dotted path of the name, from the top-level module (``torchtext.data.Field``)."""
    kwargs: list[str] = field(default_factory=list)
    uses: list[tuple[str, int]] = field(default_factory=list)
    """(file, line) where the name or the call appears."""
    guarded: bool = False
    call: tuple[str, int] | None = None
    """(file, line) of the first call with keywords."""


def _attr_chain(node: ast.AST) -> tuple[str, list[str]] | None:
    parts: list[str] = []
    cur = node
    while isinstance(cur, ast.Attribute):
        parts.insert(0, cur.attr)
        cur = cur.value
    if isinstance(cur, ast.Name):
        return cur.id, parts
    return None


def _is_guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    cur = node
    while cur in parents:
        par = parents[cur]
        if isinstance(par, ast.Try) and cur in par.body:
            return True
        if isinstance(par, (ast.If, ast.IfExp, ast.While)) and any(
                w in ast.unparse(par.test) for w in ("hasattr", "version", "getattr", "__")):
            return True
        if isinstance(par, ast.Call) and isinstance(par.func, ast.Name) and \
                par.func.id in ("hasattr", "getattr"):
            return True
        cur = par
    return False


def collect_queries(code: Mapping[str, str]) -> list[Query]:
    """Names taken from third-party packages (not the standard library, not the repository's
    own modules, not availability-guarded imports), with the keywords of calls to them."""
    local = local_modules(list(code))
    queries: dict[str, Query] = {}

    def third_party(mod: str) -> bool:
        top = mod.split(".")[0]
        return bool(top) and top not in local and top not in sys.stdlib_module_names and \
            top != "__future__"

    def add(path: str, file: str, line: int, kwargs: list[str] | None = None,
            guarded: bool = False) -> None:
        if len(queries) >= MAX_QUERIES and path not in queries:
            return
        q = queries.setdefault(path, Query(path, guarded=True))
        q.guarded = q.guarded and guarded
        q.uses.append((file, line))
        if kwargs and q.call is None:
            q.call = (file, line)
        for k in kwargs or []:
            if k not in q.kwargs:
                q.kwargs.append(k)

    for f in sorted(code):
        if not f.endswith(".py"):
            continue
        try:
            tree = parse_python(code[f])
        except SyntaxError:
            continue
        parents = {c: n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
        aliases: dict[str, str] = {}
        stores: dict[str, int] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                stores[node.id] = stores.get(node.id, 0) + 1
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                stores[node.name] = stores.get(node.name, 0) + 1
            elif isinstance(node, ast.arg):
                stores[node.arg] = stores.get(node.arg, 0) + 1
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                if _guarded(node, parents):
                    continue
                for a in node.names:
                    if third_party(a.name):
                        if a.asname:
                            aliases[a.asname] = a.name
                        else:
                            aliases[a.name.split(".")[0]] = a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                if not third_party(node.module) or _guarded(node, parents):
                    continue
                for a in node.names:
                    if a.name == "*":
                        continue
                    add(f"{node.module}.{a.name}", f, node.lineno)
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        # Names rebound in the file are not the imported object everywhere: left out.
        aliases = {k: v for k, v in aliases.items() if not stores.get(k)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                if isinstance(parents.get(node), ast.Attribute):
                    continue  # judged at the longest chain
                chain = _attr_chain(node)
                if chain and chain[0] in aliases:
                    add(".".join([aliases[chain[0]], *chain[1]]), f, node.lineno,
                        guarded=_is_guarded(node, parents))
            elif isinstance(node, ast.Call):
                kws = [k.arg for k in node.keywords if k.arg]
                if not kws or any(k.arg is None for k in node.keywords):
                    continue
                chain = _attr_chain(node.func) if isinstance(node.func, ast.Attribute) else (
                    (node.func.id, []) if isinstance(node.func, ast.Name) else None)
                if chain and chain[0] in aliases:
                    add(".".join([aliases[chain[0]], *chain[1]]), f, node.lineno, kws,
                        guarded=_is_guarded(node, parents))
    return list(queries.values())


def _inspector_source() -> str:
    return resources.files("papercoder.verify").joinpath("inspector.py").read_text(
        encoding="utf-8")


def _strs(x: Any, limit: int = 5000) -> list[str]:
    if not isinstance(x, list):
        return []
    return [s[:200] for s in x[:limit] if isinstance(s, str)]


def parse_answer(output: str, count: int) -> dict[int, dict[str, Any]] | None:
    """The inspector's answer, checked field by field (None when unusable)."""
    line = next((ln for ln in reversed(output.splitlines()) if ln.startswith(MARK)), None)
    if line is None or len(line) > MAX_ANSWER:
        return None
    try:
        data = json.loads(line[len(MARK):])
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, list):
        return None
    out: dict[int, dict[str, Any]] = {}
    for item in data[:MAX_QUERIES]:
        if not isinstance(item, dict):
            continue
        i = item.get("id")
        status = item.get("status")
        if not isinstance(i, int) or not 0 <= i < count or status not in (
                "ok", "missing", "unknown"):
            continue
        owner = item.get("owner")
        out[i] = {"status": status, "missing": item.get("missing") if isinstance(
            item.get("missing"), str) else "", "owner": owner[:300] if isinstance(
                owner, str) else "", "names": _strs(item.get("names")),
            "bad_kwargs": _strs(item.get("bad_kwargs"), 100),
            "params": _strs(item.get("params"), 500),
            "via": via[:300] if isinstance(via := item.get("via"), str) else ""}
    return out


def ask_inspector(queries: list[Query], python: Path, sandbox: Sandbox, *,
                  timeout: float = 180.0) -> dict[int, dict[str, Any]] | None:
    """Run the inspector with ``python`` inside ``sandbox`` on the queries."""
    tmp = Path(tempfile.mkdtemp(prefix="papercoder-grounding-"))
    try:
        src = tmp / "src"
        src.mkdir()
        (src / "inspector.py").write_text(_inspector_source(), encoding="utf-8")
        (src / "queries.json").write_text(json.dumps(
            [{"id": i, "path": q.path, "kwargs": q.kwargs} for i, q in enumerate(queries)]),
            encoding="utf-8")
        work = sandbox.prepare_copy(src, tmp / "work")
        r = sandbox.run([str(python), "-I", "inspector.py"], work, timeout=timeout,
                        python_bin=python)
        return parse_answer(r.output, len(queries))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _did_you_mean(name: str, names: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if not close:
        low = name.lower()
        close = [n for n in names if low in n.lower() or n.lower() in low][:3]
    return f"; did you mean {', '.join(close)}?" if close else ""


def ground(code: Mapping[str, str], python: Path, sandbox: Sandbox) \
        -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Findings for names and keywords the installed packages do not have, and a summary
    (queries asked, answered)."""
    queries = collect_queries(code)
    if not queries:
        return [], {"queries": 0, "answered": 0}
    answers = ask_inspector(queries, python, sandbox)
    if answers is None:
        return [], {"queries": len(queries), "answered": 0,
                    "error": "the inspector gave no usable answer"}
    out: list[dict[str, Any]] = []
    reported: set[str] = set()
    for i, q in sorted(enumerate(queries), key=lambda x: x[1].path):
        a = answers.get(i)
        if a is None:
            continue
        file, line = q.uses[0]
        if a["status"] == "missing" and a["missing"]:
            gone = q.path.split("." + a["missing"] + ".")[0] + "." + a["missing"] \
                if ("." + a["missing"] + ".") in q.path else q.path
            if gone in reported:
                continue  # Iterator.splits after Iterator: one finding
            reported.add(gone)
            owner = a["owner"] or q.path.rsplit(".", 1)[0]
            msg = (f"uses {q.path}, but the installed {owner} has no {a['missing']!r}"
                   + _did_you_mean(a["missing"], a["names"])
                   + (f" (read from its installed {a['via']})" if a["via"] else ""))
            out.append({"file": file, "line": line, "check": "api", "kind": "api",
                        "certain": not q.guarded, "message": msg})
        elif a["status"] == "ok" and a["bad_kwargs"]:
            bad = [k for k in a["bad_kwargs"] if k in q.kwargs]
            cfile, cline = q.call or (file, line)
            for k in bad:
                out.append({"file": cfile, "line": cline, "check": "api", "kind": "api",
                            "certain": not q.guarded,
                            "message": f"calls {q.path} with keyword {k!r}, which the "
                                       f"installed version does not take"
                                       + _did_you_mean(k, a["params"])})
    return out, {"queries": len(queries), "answered": len(answers)}
