"""Static checks of a generated repository: nothing is executed.

Each check returns findings ``{"file", "line", "kind", "message"}``. Kinds:
``syntax``, ``pyflakes``, ``import`` (a name imported from a repository module that does not
define it), ``requirement``, ``config``, ``reproduce``.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from pyflakes import checker as pyflakes_checker
from pyflakes import messages as pyflakes_messages

from papercoder import yamlsafe
from papercoder.pyparse import parse_python
from papercoder.verify.localimports import check_local_imports
from papercoder.verify.requirements import Installed, decode_text, missing_requirements

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


def finding(file: str, line: int | None, check: str, message: str, certain: bool = True) \
        -> Finding:
    """A finding: ``certain`` ones (the code will fail, or a requirement is provably missing)
    go to the repair call; notes are only reported. ``kind`` repeats ``check`` for readers of
    older run.json files."""
    return {"file": file, "line": line, "check": check, "kind": check, "certain": certain,
            "message": message}


def certain_findings(findings: list[Finding]) -> list[Finding]:
    """The findings a repair may act on (older findings without the flag count as certain)."""
    return [f for f in findings if f.get("certain", True)]


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
        try:
            w = pyflakes_checker.Checker(tree, filename=f)
        except RecursionError:
            continue
        for m in sorted(w.messages, key=lambda m: (m.lineno, m.col)):
            if isinstance(m, _ERRORS):
                out.append(finding(f, m.lineno, "pyflakes", m.message % m.message_args))
    return out


# -- configuration keys ---------------------------------------------------------------------
def _yaml_keys(data: Any) -> tuple[set[str], set[tuple[str, ...]]]:
    """Every key at any depth, and every key path (as tuples, from any node). Aliases are
    walked once each: a self-referencing alias (``a: &x [*x]``) does not recurse."""
    keys: set[str] = set()
    paths: set[tuple[str, ...]] = set()
    done: dict[int, list[tuple[str, ...]]] = {}

    def walk(node: Any, depth: int) -> list[tuple[str, ...]]:
        if id(node) in done or depth > 200:
            return done.get(id(node), [])
        here: list[tuple[str, ...]] = []
        if isinstance(node, (dict, list)):
            done[id(node)] = here  # an alias back to this node sees it as it is so far
        if isinstance(node, dict):
            for k, v in node.items():
                k = str(k)
                keys.add(k)
                here.append((k,))
                here += [(k, *rest) for rest in walk(v, depth + 1)][:10_000]
        elif isinstance(node, list):
            for v in node:
                walk(v, depth + 1)
        paths.update(here)
        return here

    walk(data, 0)
    return keys, paths


def _root_paths(data: Any) -> set[tuple[str, ...]]:
    """Key paths from the document's root (dicts only; aliases walked once)."""
    out: set[tuple[str, ...]] = set()
    stack: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    seen: set[int] = set()
    while stack and len(out) < 100_000:
        node, prefix = stack.pop()
        if not isinstance(node, dict) or id(node) in seen or len(prefix) > 50:
            continue
        seen.add(id(node))
        for k, v in node.items():
            path = (*prefix, str(k))
            out.add(path)
            stack.append((v, path))
    return out


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
            if cls.bases:  # a subclass (e.g. of a Hugging Face config): inherited attributes
                dynamic = True
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


def _assigned_attributes(trees: Mapping[str, ast.Module]) -> set[str]:
    """Attributes set at run time on anything (``config.tb_logger = ...``, ``setattr(cfg,
    "x", ...)``) or probed (``hasattr``/``getattr`` with a default): never judged."""
    out: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
                out.add(node.attr)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id in ("setattr", "hasattr", "getattr", "delattr") and \
                    len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and \
                    isinstance(node.args[1].value, str):
                out.add(node.args[1].value)
            elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and \
                    isinstance(node.left.value, str):  # "x" in cfg
                out.add(node.left.value)
    return out


_LOADERS = {"yaml": {"safe_load", "load", "full_load", "unsafe_load"}, "json": {"load"},
            "OmegaConf": {"load"}, "omegaconf.OmegaConf": {"load"}}


def _loader(call: ast.AST) -> str | None:
    """"dict" or "omegaconf" when ``call`` loads a YAML/JSON document."""
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
        return None
    owner = ast.unparse(call.func.value)
    if call.func.attr in _LOADERS.get(owner, set()):
        return "omegaconf" if "OmegaConf" in owner else "dict"
    return None


@dataclass
class _Loaded:
    file: str  # the .py file
    var: str
    config: str  # the repository file it loads
    kind: str  # "dict" or "omegaconf"
    line: int


def _resolve_config_path(text: str, py_file: str, code: Mapping[str, str]) -> str | None:
    if not text.endswith((".yaml", ".yml", ".json")):
        return None
    here = py_file.rsplit("/", 1)[0] + "/" if "/" in py_file else ""
    for cand in (text.lstrip("./"), here + text.lstrip("./")):
        if cand in code:
            return cand
    return None


def _loaded_configs(code: Mapping[str, str], trees: Mapping[str, ast.Module]) -> list[_Loaded]:
    """Variables assigned straight from loading a configuration file of the repository:
    ``with open("config.yaml") as f: cfg = yaml.safe_load(f)`` or
    ``cfg = OmegaConf.load("configs/x.yaml")``."""
    out: list[_Loaded] = []
    for f, tree in trees.items():
        handles: dict[int, str] = {}  # id(loader call) -> path of the handle it reads
        for node in ast.walk(tree):
            if not isinstance(node, (ast.With, ast.AsyncWith)):
                continue
            opened: dict[str, str] = {}
            for item in node.items:
                c = item.context_expr
                if isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and \
                        c.func.id == "open" and c.args and \
                        isinstance(c.args[0], ast.Constant) and \
                        isinstance(c.args[0].value, str) and \
                        isinstance(item.optional_vars, ast.Name):
                    opened[item.optional_vars.id] = c.args[0].value
            for stmt in node.body:
                for sub in ast.walk(stmt):
                    if isinstance(sub, ast.Call) and sub.args and \
                            isinstance(sub.args[0], ast.Name) and sub.args[0].id in opened:
                        handles[id(sub)] = opened[sub.args[0].id]
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and
                    isinstance(node.targets[0], ast.Name)):
                continue
            kind = _loader(node.value)
            if kind is None:
                continue
            assert isinstance(node.value, ast.Call)
            arg = node.value.args[0] if node.value.args else None
            path: str | None = handles.get(id(node.value))
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                path = arg.value
            elif isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and \
                    arg.func.id == "open" and arg.args and \
                    isinstance(arg.args[0], ast.Constant) and isinstance(arg.args[0].value, str):
                path = arg.args[0].value
            target = _resolve_config_path(path, f, code) if path else None
            if target:
                out.append(_Loaded(f, node.targets[0].id, target, kind, node.lineno))
    return out


def _var_is_changed(tree: ast.Module, var: str, loads: int) -> bool:
    """True when ``var`` may gain keys: assigned more than once, written into, merged, or
    handed to a function (which may add keys)."""
    assigned = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == var and isinstance(node.ctx, ast.Store):
            assigned += 1
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)):
            base: ast.AST = node
            while isinstance(base, ast.Subscript):
                base = base.value
            if isinstance(base, ast.Name) and base.id == var:
                return True
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and \
                isinstance(node.value, ast.Name) and node.value.id == var:
            return True
        elif isinstance(node, ast.Call):
            fn = node.func
            if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) and \
                    fn.value.id == var and fn.attr not in ("get", "keys", "items", "values"):
                return True
            for a in [*node.args, *(k.value for k in node.keywords)]:
                if isinstance(a, ast.Name) and a.id == var:
                    return True
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and \
                node.target.id == var:
            return True
    return assigned > loads


def _guarded_read(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    cur = node
    while cur in parents:
        par = parents[cur]
        if isinstance(par, ast.Try) and cur in par.body:
            return True
        if isinstance(par, (ast.If, ast.IfExp)) and cur is not par.test and (
                "in " in ast.unparse(par.test) or "hasattr" in ast.unparse(par.test)):
            return True
        cur = par
    return False


def _parse_config(text: str, name: str) -> tuple[Any, Finding | None]:
    try:
        return (json.loads(text) if name.endswith(".json") else yamlsafe.load(text)), None
    except RecursionError:
        return None, finding(name, 1, "config", "is not valid YAML (nested too deeply)")
    except (yaml.YAMLError, ValueError) as e:
        mark = getattr(e, "problem_mark", None)
        line = (mark.line + 1) if mark is not None else 1
        fmt = "JSON" if name.endswith(".json") else "YAML"
        return None, finding(name, line, "config", f"is not valid {fmt} ({e})".replace(
            "\n", " "))


def check_config(code: Mapping[str, str], trees: Mapping[str, ast.Module]) -> list[Finding]:
    """Config reads judged against the configuration file the code provably loads.

    Certain: ``cfg["a"]["b"]`` (or ``cfg.a.b`` on an ``OmegaConf.load`` result) where ``cfg``
    is assigned once, straight from loading a YAML/JSON file of the repository, never changed
    or handed to a function, the read is not guarded, and the file has no such key path.
    Notes: reads on other config-looking objects against config.yaml or the config classes,
    leaving out attributes assigned at run time and probed ones (hasattr, getattr, ``in``)."""
    out: list[Finding] = []
    docs: dict[str, Any] = {}
    for name in sorted({"config.yaml", *(x.config for x in _loaded_configs(code, trees))}):
        if name not in code:
            continue
        data, bad = _parse_config(code[name], name)
        if bad is not None:
            out.append(bad)
        else:
            docs[name] = data
    loaded = [x for x in _loaded_configs(code, trees) if x.config in docs]
    judged: set[tuple[str, int]] = set()
    seen: set[tuple[str, str]] = set()
    for ld in loaded:
        tree = trees[ld.file]
        data = docs[ld.config]
        if not isinstance(data, dict):
            continue
        same = [x for x in loaded if x.file == ld.file and x.var == ld.var]
        if len({x.config for x in same}) != 1:
            continue
        changed = _var_is_changed(tree, ld.var, len(same))
        roots = _root_paths(data)
        parents = {c: n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
        for node in ast.walk(tree):
            path: tuple[str, ...] | None = None
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
                chain = _subscript_chain(node)
                if chain and isinstance(chain[0], ast.Name) and chain[0].id == ld.var:
                    path = tuple(chain[1])
            elif ld.kind == "omegaconf" and isinstance(node, ast.Attribute) and \
                    isinstance(node.ctx, ast.Load):
                parts: list[str] = []
                cur: ast.AST = node
                while isinstance(cur, ast.Attribute):
                    parts.insert(0, cur.attr)
                    cur = cur.value
                if isinstance(cur, ast.Name) and cur.id == ld.var and not any(
                        p in _GENERIC_ATTRS or p.startswith("_") for p in parts):
                    path = tuple(parts)
            if not path or path in roots:
                continue
            if isinstance(parents.get(node), (ast.Subscript, ast.Attribute)) and \
                    getattr(parents[node], "value", None) is node:
                continue  # judged at the longest chain
            judged.update((ld.file, n.lineno) for n in ast.walk(node)
                          if isinstance(n, (ast.expr, ast.stmt)))
            key = (ld.file, ".".join(path))
            if key in seen:
                continue
            seen.add(key)
            certain = not changed and not _guarded_read(node, parents)
            out.append(finding(ld.file, getattr(node, "lineno", 1), "config",
                               f"reads config key {'.'.join(path)!r}, which {ld.config} "
                               f"(loaded at line {ld.line}) does not define", certain))
    out += _hydra_reads(code, trees, judged, seen)
    out += _instance_reads(trees, judged, seen)
    out += _config_notes(code, trees, docs.get("config.yaml"), judged, seen)
    return out


# -- Hydra: @hydra.main(config_path=..., config_name=...) and its config groups ------------
_PLUS_OVERRIDE = re.compile(r"(?:^|[\s'\"\[,])\+\+?[A-Za-z_][\w./@-]*=", re.MULTILINE)
_PACKAGE = re.compile(r"^\s*#\s*@package\s+(\S+)", re.MULTILINE)
_HYDRA_MUTATORS = {"open_dict", "set_struct", "read_write", "merge", "update", "merge_with",
                   "set_readonly", "flag_override", "unsafe_merge"}


@dataclass
class _HydraConfig:
    known: set[tuple[str, ...]]
    """Key paths the composed config may have (every option of every group counted)."""
    leaves: set[tuple[str, ...]]
    """Key paths whose value is not a mapping in some document (a scalar, null, ``???``,
    an interpolation, a list): what is read below them is not a config key."""
    groups: set[str]
    """Top-level names of config groups (folders) the defaults list does not select."""
    sure: bool
    why: str
    primary: str


def _str_arg(call: ast.Call, name: str, pos: int) -> tuple[bool, str | None]:
    """(given, literal value) of a call argument; value None when it is not a literal."""
    for k in call.keywords:
        if k.arg == name:
            v = k.value
            if isinstance(v, ast.Constant) and (v.value is None or isinstance(v.value, str)):
                return True, v.value
            return True, None
    if len(call.args) > pos:
        v = call.args[pos]
        if isinstance(v, ast.Constant) and isinstance(v.value, str):
            return True, v.value
        return True, None
    return False, None


def _hydra_mains(trees: Mapping[str, ast.Module]) \
        -> list[tuple[str, ast.FunctionDef, str | None, str | None]]:
    """(file, function, config_path, config_name) of each ``@hydra.main(...)`` function with
    literal arguments (None where an argument is absent or not a literal)."""
    out = []
    for f, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and ast.unparse(dec.func) in ("hydra.main",
                                                                           "main"):
                    if ast.unparse(dec.func) == "main" and "hydra" not in (
                            ast.unparse(tree)[:20_000]):
                        continue
                    _, path = _str_arg(dec, "config_path", 0)
                    _, name = _str_arg(dec, "config_name", 1)
                    out.append((f, node, path, name))
    return out


def _norm(path: str) -> str:
    parts: list[str] = []
    for p in path.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not parts:
                return ""
            parts.pop()
        else:
            parts.append(p)
    return "/".join(parts)


def _doc_paths(data: Any, prefix: tuple[str, ...], known: set[tuple[str, ...]],
               leaves: set[tuple[str, ...]]) -> None:
    known.update(prefix[:i] for i in range(1, len(prefix) + 1))
    if not isinstance(data, dict):
        if prefix:
            leaves.add(prefix)
        return
    for path in _root_paths(data):
        known.add((*prefix, *path))
    stack: list[tuple[Any, tuple[str, ...]]] = [(data, prefix)]
    while stack and len(leaves) < 100_000:
        node, at = stack.pop()
        for k, v in node.items():
            here = (*at, str(k))
            if isinstance(v, dict):
                if len(here) < 50:
                    stack.append((v, here))
            else:
                leaves.add(here)


def _hydra_config(code: Mapping[str, str], py_file: str, config_path: str | None,
                  config_name: str | None) -> _HydraConfig | None:
    """The keys ``@hydra.main`` composes from the repository's files; None when no primary
    config file of the repository is provably loaded."""
    if config_path is None or not config_name:
        return None
    here = py_file.rsplit("/", 1)[0] if "/" in py_file else ""
    root = _norm(f"{here}/{config_path}" if here else config_path) \
        if not config_path.startswith("/") else ""
    if not root and config_path not in (".", "./"):
        return None
    prefix = f"{root}/" if root else ""
    primary = prefix + (config_name if config_name.endswith((".yaml", ".yml"))
                        else f"{config_name}.yaml")
    if primary not in code:
        return None
    data, bad = _parse_config(code[primary], primary)
    if bad is not None or not isinstance(data, dict):
        return None
    known: set[tuple[str, ...]] = set()
    leaves: set[tuple[str, ...]] = set()
    why: list[str] = []
    body = {k: v for k, v in data.items() if k != "defaults"}
    _doc_paths(body, (), known, leaves)
    defaults = data.get("defaults", [])
    if not isinstance(defaults, list):
        why.append("its defaults list is not a list")
        defaults = []
    # every group folder under the config folder, with its options
    groups: dict[str, list[str]] = {}
    for f in code:
        if f.startswith(prefix) and f.endswith((".yaml", ".yml")) and "/" in f[len(prefix):]:
            group, _, option = f[len(prefix):].rpartition("/")
            groups.setdefault(group, []).append(f)
    selected: set[str] = set()
    for entry in defaults:
        if entry == "_self_":
            continue
        if isinstance(entry, str):
            other = prefix + (entry if entry.endswith((".yaml", ".yml")) else f"{entry}.yaml")
            sub, bad = _parse_config(code[other], other) if other in code and "/" not in \
                entry else (None, None)
            if isinstance(sub, dict) and "defaults" not in sub and bad is None:
                _doc_paths(sub, (), known, leaves)
            else:
                why.append(f"the defaults entry {entry!r} is not modelled")
            continue
        if not (isinstance(entry, dict) and len(entry) == 1):
            why.append("a defaults entry is not 'group: option'")
            continue
        [(key, option)] = entry.items()
        key = str(key)
        optional = key.startswith("optional ")
        key = key.removeprefix("optional ").strip().lstrip("/")
        if key.startswith("override ") or "@" in key or not re.fullmatch(r"[\w/-]+", key):
            why.append(f"the defaults entry {key!r} is not modelled")
            continue
        selected.add(key)
        if option is not None and not isinstance(option, str):
            why.append(f"the group {key} selects several options")
        elif isinstance(option, str) and option != "???" and \
                f"{prefix}{key}/{option}.yaml" not in code and not optional:
            why.append(f"{prefix}{key}/{option}.yaml does not exist")
        for opt_file in groups.get(key, []):
            sub, bad = _parse_config(code[opt_file], opt_file)
            header = _PACKAGE.search("\n".join(
                ln for ln in code[opt_file].splitlines()[:20] if ln.lstrip().startswith("#")))
            package = header.group(1) if header else "_group_"
            own = sub.get("defaults") if isinstance(sub, dict) else None
            siblings = {o.rsplit("/", 1)[-1].rsplit(".", 1)[0] for o in groups.get(key, [])}
            # an option's own defaults naming other options of its group add no key the
            # union of the group's options lacks
            plain = own is None or (isinstance(own, list) and all(
                isinstance(e, str) and (e == "_self_" or e.removesuffix(".yaml") in siblings)
                for e in own))
            if isinstance(sub, dict) and own is not None:
                sub = {k: v for k, v in sub.items() if k != "defaults"}
            if bad is not None or not plain or package not in ("_group_", "_global_"):
                why.append(f"{opt_file} is not modelled (own defaults, package or syntax)")
                if bad is not None or package not in ("_group_", "_global_"):
                    continue  # (its own keys still count: fewer notes)
            at = () if package == "_global_" else tuple(key.split("/"))
            _doc_paths(sub if sub is not None else {}, at, known, leaves)
        if not groups.get(key):
            why.append(f"the group {key} has no option files")
    free = {g.split("/", 1)[0] for g in groups if g not in selected and not any(
        g.startswith(s + "/") for s in selected)}
    for f, text in code.items():
        if not f.endswith((".py", ".sh", ".md", ".txt", ".yaml", ".yml", ".cfg", ".json",
                           ".toml", ".ipynb", ".slurm", ".bash")):
            continue
        m = _PLUS_OVERRIDE.search(text)
        if m:
            line = text.count("\n", 0, m.start()) + 1
            why.append(f"{f}:{line} adds config keys on the command line (+key=...)")
            break
    if any("ConfigStore" in t for f, t in code.items() if f.endswith(".py")):
        why.append("the code registers structured configs (ConfigStore)")
    return _HydraConfig(known, leaves, free, not why, "; ".join(why[:3]), primary)


def _read_path(node: ast.AST, var: str) -> tuple[str, ...] | None:
    """``var.a.b`` / ``var["a"].b`` as ("a", "b"); None when the chain is not rooted at
    ``var`` or holds something else (an index, a call)."""
    parts: list[str] = []
    cur = node
    while True:
        if isinstance(cur, ast.Attribute):
            parts.insert(0, cur.attr)
            cur = cur.value
        elif isinstance(cur, ast.Subscript) and isinstance(cur.slice, ast.Constant) and \
                isinstance(cur.slice.value, str):
            parts.insert(0, cur.slice.value)
            cur = cur.value
        else:
            break
    if not (isinstance(cur, ast.Name) and cur.id == var) or not parts:
        return None
    for i, p in enumerate(parts):
        if p in _GENERIC_ATTRS or p.startswith("_"):
            parts = parts[:i]
            break
    return tuple(parts) or None


def hydra_reach(code: Mapping[str, str]) -> dict[str, int]:
    """How far the Hydra judgement reaches in a repository (for bench/static_precision.py):
    ``@hydra.main`` functions, those whose config folder is in the repository, those whose
    composition is fully modelled, and the distinct key paths read from their argument."""
    _, trees = check_syntax(code)
    out = {"functions": 0, "config_found": 0, "fully_modelled": 0, "reads": 0}
    for f, fn, config_path, config_name in _hydra_mains(trees):
        out["functions"] += 1
        hc = _hydra_config(code, f, config_path, config_name)
        args = [a.arg for a in fn.args.posonlyargs + fn.args.args]
        if hc is None or len(args) != 1:
            continue
        out["config_found"] += 1
        out["fully_modelled"] += hc.sure
        out["reads"] += len({p for n in ast.walk(fn) if isinstance(n, (
            ast.Attribute, ast.Subscript)) and (p := _read_path(n, args[0]))})
    return out


def _hydra_reads(code: Mapping[str, str], trees: Mapping[str, ast.Module],
                 judged: set[tuple[str, int]], seen: set[tuple[str, str]]) -> list[Finding]:
    """Reads of the ``@hydra.main`` function's config argument, judged against the keys the
    repository's config folder composes (primary config, ``defaults`` groups with every
    option counted, ``# @package _global_``). Certain only when the composition is fully
    modelled, the argument is never rebound, mutated or unlocked in the function, and the
    read is not guarded; otherwise a note."""
    out: list[Finding] = []
    probed = _assigned_attributes(trees)  # hasattr/getattr/"x" in cfg, setattr anywhere
    for f, fn, config_path, config_name in _hydra_mains(trees):
        args = [a.arg for a in fn.args.posonlyargs + fn.args.args]
        if len(args) != 1:
            continue
        var = args[0]
        hc = _hydra_config(code, f, config_path, config_name)
        if hc is None:
            continue
        rebound = written = False
        for node in ast.walk(fn):
            if isinstance(node, ast.Name) and node.id == var and isinstance(
                    node.ctx, (ast.Store, ast.Del)) or isinstance(node, (ast.Global,
                                                                          ast.Nonlocal)):
                rebound = True
            elif isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else \
                    node.func.id if isinstance(node.func, ast.Name) else ""
                if name in _HYDRA_MUTATORS or name in ("setattr", "exec", "eval"):
                    written = True
        if rebound:
            continue
        stored = {p for node in ast.walk(fn) if isinstance(node, (ast.Attribute, ast.Subscript))
                  and isinstance(node.ctx, (ast.Store, ast.Del))
                  and (p := _read_path(node, var))}
        parents = {c: n for n in ast.walk(fn) for c in ast.iter_child_nodes(n)}
        for node in ast.walk(fn):
            if not isinstance(node, (ast.Attribute, ast.Subscript)) or \
                    not isinstance(node.ctx, ast.Load):
                continue
            path = _read_path(node, var)
            par = parents.get(node)
            if path is None or path[0] == "hydra" or (
                    isinstance(par, (ast.Attribute, ast.Subscript)) and par.value is node and
                    (_read_path(par, var) or ()) != path and _read_path(par, var)):
                continue  # judged at the longest chain
            if path in hc.known or any(path[:i] in stored for i in range(1, len(path) + 1)) \
                    or path[0] in probed or any(path[:i] in hc.leaves
                                                for i in range(1, len(path))):
                continue  # present, assigned, probed, or below a value (``name.lower()``)
            if (f, ".".join(path)) in seen:
                continue
            seen.add((f, ".".join(path)))
            judged.add((f, node.lineno))
            reasons = [r for r in (
                hc.why,
                f"{path[0]} is a config group the defaults do not select" if path[0] in
                hc.groups else "",
                "the function unlocks or merges into the config" if written else "",
                "the read is guarded" if _guarded_read(node, parents) else "") if r]
            msg = (f"reads config key {'.'.join(path)!r}, which the Hydra config "
                   f"{hc.primary} and its groups do not define")
            out.append(finding(f, node.lineno, "config",
                               msg + (f" (not certain: {reasons[0]})" if reasons else ""),
                               not reasons))
    return out


def _plain_class_attributes(cls: ast.ClassDef) -> set[str] | None:
    """Attributes of a class with no base classes and nothing dynamic (None otherwise)."""
    if [b for b in cls.bases if not (isinstance(b, ast.Name) and b.id == "object")] or \
            cls.decorator_list or cls.keywords:
        return None
    one = {cls.name: cls}
    attrs, dynamic = _class_attributes({"": ast.Module(body=list(one.values()),
                                                        type_ignores=[])})
    return None if dynamic else attrs | {"__class__", "__dict__"}


def _instance_reads(trees: Mapping[str, ast.Module], judged: set[tuple[str, int]],
                    seen: set[tuple[str, str]]) -> list[Finding]:
    """``config = Config(); config.x`` where ``Config`` is a plain class of the repository
    (no bases, decorators or dynamic attributes) that never gets ``x``: certain."""
    classes: dict[str, list[ast.ClassDef]] = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes.setdefault(node.name, []).append(node)
    runtime = _assigned_attributes(trees)
    out: list[Finding] = []
    for f, tree in trees.items():
        stores: dict[str, list[ast.AST]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                stores.setdefault(node.id, []).append(node)
        parents = {c: n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and
                    isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Call)
                    and isinstance(node.value.func, ast.Name)):
                continue
            var, cname = node.targets[0].id, node.value.func.id
            defs = classes.get(cname, [])
            if len(defs) != 1 or len(stores.get(var, [])) != 1 or not (
                    "config" in cname.lower() or _config_root(node.targets[0])):
                continue
            attrs = _plain_class_attributes(defs[0])
            if attrs is None:
                continue
            for read in ast.walk(tree):
                if not (isinstance(read, ast.Attribute) and isinstance(read.ctx, ast.Load) and
                        isinstance(read.value, ast.Name) and read.value.id == var):
                    continue
                name = read.attr
                if name in attrs or name in runtime or (f, name) in seen:
                    continue
                seen.add((f, name))
                judged.add((f, read.lineno))
                out.append(finding(f, read.lineno, "config",
                                   f"reads config attribute {name!r}, which the class "
                                   f"{cname} does not define",
                                   not _guarded_read(read, parents)))
    return out


def _config_notes(code: Mapping[str, str], trees: Mapping[str, ast.Module], data: Any,
                  judged: set[tuple[str, int]], seen: set[tuple[str, str]]) -> list[Finding]:
    """Reads on config-looking names that no provable load backs: notes only."""
    keys, paths = _yaml_keys(data) if isinstance(data, dict) else (set(), set())
    attrs, dynamic = _class_attributes(trees)
    has_classes = bool(attrs)
    runtime = _assigned_attributes(trees)
    out: list[Finding] = []
    for f, tree in trees.items():
        for node in ast.walk(tree):
            if (f, getattr(node, "lineno", -1)) in judged:
                continue
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and keys:
                chain = _subscript_chain(node)
                if chain is None or not _config_root(chain[0]):
                    continue
                path = tuple(chain[1])
                if path in paths or path[-1] in runtime or (f, ".".join(path)) in seen:
                    continue
                seen.update((f, ".".join(path[:i])) for i in range(1, len(path) + 1))
                out.append(finding(f, node.lineno, "config",
                                   f"reads config key {'.'.join(path)!r}, which config.yaml "
                                   "does not define (config.yaml is not shown to be what this "
                                   "object holds)", False))
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and \
                    _config_root(node.value) and not dynamic and (keys or has_classes):
                name = node.attr
                if name in attrs or name in keys or name in _GENERIC_ATTRS or \
                        name in runtime or name.startswith("__") or (f, name) in seen:
                    continue
                seen.add((f, name))
                where = "the config class" + (" or config.yaml" if keys else "") \
                    if has_classes else "config.yaml"
                out.append(finding(f, node.lineno, "config",
                                   f"reads config attribute {name!r}, which {where} does "
                                   "not define (the object may come from elsewhere)", False))
    return out


# -- reproduce.sh and smoke mode --------------------------------------------------------------
def check_reproduce(code: Mapping[str, str], smoke_commands: list[str]) -> list[Finding]:
    out = []
    if "reproduce.sh" not in code:
        out.append(finding("reproduce.sh", 1, "reproduce",
                           "is missing: add a bash script at the repository root that runs "
                           "the experiments and passes its arguments on (--smoke)"))
    wired = any("--smoke" in src or "smoke" in re.findall(r"[\w]+", src)
                for f, src in code.items() if f.endswith((".py", ".sh")))
    if not wired:
        out.append(finding("main.py" if "main.py" in code else "reproduce.sh", 1,
                           "reproduce", "no entry point accepts --smoke: add a smoke mode "
                           "(tiny sizes, few steps, seeded, synthetic data when the real "
                           "data is absent, metrics to results/metrics.json)"))
    for cmd in smoke_commands:
        for word in cmd.split():
            w = word.strip("'\"")
            if w.endswith((".py", ".sh")) and "/" not in w.lstrip("./") and \
                    w.lstrip("./") not in code:
                out.append(finding(w.lstrip("./"), 1, "reproduce",
                                   f"the smoke command {cmd!r} runs {w}, which does not exist"))
    return out


def run_static(code: Mapping[str, str], smoke_commands: list[str] | None = None, *,
               reproduce: bool = True, installed: Installed | None = None) -> list[Finding]:
    """All static checks over ``code`` (repository path -> text). ``reproduce`` checks
    papercoder's own contract (reproduce.sh, --smoke); off for other repositories.
    ``installed``: what verify's venv holds (``EnvManager.installed_packages``), so the
    requirement check counts dependencies from what really got installed."""
    findings, trees = check_syntax(code)
    findings += check_pyflakes(trees)
    parsed = {f: s for f, s in code.items() if f in trees or not f.endswith(".py")}
    for p in check_local_imports(parsed):
        names = ", ".join(p.missing)
        findings.append(finding(p.file, p.line, "import",
                                f"imports {names} from {p.module_file}, which does not "
                                f"define {'it' if len(p.missing) == 1 else 'them'}"
                                + (f" (not certain: {p.why})" if p.why else ""), p.certain))
    findings += missing_requirements(parsed, installed=installed)
    findings += check_config(code, trees)
    if reproduce:
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
            text = decode_text(p.read_bytes())
        except OSError:
            continue
        if text is not None:
            out[rel] = text
    return out
