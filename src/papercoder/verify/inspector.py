"""Run by the repository's interpreter inside the sandbox (never imported by papercoder):
answers which dotted names exist in the installed packages and which keyword arguments their
callables take. Reads queries.json ([{"id", "path", "kwargs"}]) and prints one line,
"PAPERCODER-GROUNDING:" + JSON ([{"id", "status", "missing", "owner", "names", "bad_kwargs",
"params"}]). Written for any Python 3."""

import ast
import importlib
import importlib.util
import inspect
import io
import json
import os
import sys

MARK = "PAPERCODER-GROUNDING:"


def public(obj):
    try:
        return sorted(n for n in dir(obj) if not n.startswith("__"))[:5000]
    except Exception:  # noqa: BLE001
        return []


def absent(err, name):
    """True when ``err`` says that module ``name`` itself does not exist (not that something
    it imports is missing or broken)."""
    return isinstance(err, ModuleNotFoundError) and getattr(err, "name", None) == name


def top_names(file):
    """Top-level names a module's source binds; None when it cannot be known statically."""
    try:
        with open(file, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except Exception:  # noqa: BLE001
        return None
    names = set()

    def collect(stmts):
        for node in stmts:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
                if node.name == "__getattr__":
                    return False
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    if a.name == "*":
                        return False
                    names.add((a.asname or a.name).split(".")[0])
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                for fld in ("body", "orelse", "finalbody"):
                    if collect(getattr(node, fld, []) or []) is False:
                        return False
                for h in getattr(node, "handlers", []) or []:
                    if collect(h.body) is False:
                        return False
        return True

    if collect(tree.body) is False:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("globals", "exec", "setattr"):
            return None
    return names


def resolve_source(parts, error):
    """Resolve from the installed source files when the package does not import here."""
    try:
        spec = importlib.util.find_spec(parts[0])
    except Exception:  # noqa: BLE001
        return {"status": "unknown"}
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return {"status": "unknown"}
    file = spec.origin
    owner = parts[0]
    for name in parts[1:]:
        folder = os.path.dirname(file) if file.endswith("__init__.py") else None
        if folder is not None:
            sub_pkg = os.path.join(folder, name, "__init__.py")
            sub_mod = os.path.join(folder, name + ".py")
            if os.path.isfile(sub_pkg):
                file, owner = sub_pkg, owner + "." + name
                continue
            if os.path.isfile(sub_mod):
                file, owner = sub_mod, owner + "." + name
                continue
        names = top_names(file)
        if names is None:
            return {"status": "unknown"}
        if name in names:
            return {"status": "ok"}  # an attribute: what it holds is not known statically
        listed = set(names)
        if folder is not None:
            for entry in os.listdir(folder):
                if entry.endswith(".py") and entry != "__init__.py":
                    listed.add(entry[:-3])
                elif os.path.isfile(os.path.join(folder, entry, "__init__.py")):
                    listed.add(entry)
        return {"status": "missing", "missing": name, "owner": owner,
                "names": sorted(n for n in listed if not n.startswith("__"))[:5000],
                "via": "source (" + error[:200] + ")"}
    return {"status": "ok"}


def resolve(path):
    parts = path.split(".")
    obj = None
    owner = ""
    mod_end = 0
    for i in range(len(parts), 0, -1):  # the longest importable module prefix
        name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(name)
            mod_end = i
            owner = name
            break
        except ImportError as e:
            if absent(e, name):
                continue
            return resolve_source(parts, type(e).__name__ + ": " + str(e))
        except Exception as e:  # noqa: BLE001 - a package that fails to import
            return resolve_source(parts, type(e).__name__ + ": " + str(e))
    if obj is None:
        return {"status": "unknown"}
    for j in range(mod_end, len(parts)):
        name = parts[j]
        try:
            nxt = getattr(obj, name)
        except AttributeError:
            nxt = None
            if inspect.ismodule(obj):
                try:
                    nxt = importlib.import_module(owner + "." + name)
                except ImportError as e:
                    if not absent(e, owner + "." + name):
                        return {"status": "unknown"}  # exists, but needs something missing
                    nxt = None
                except Exception:  # noqa: BLE001
                    return {"status": "unknown"}
            if nxt is None:
                if hasattr(type(obj), "__getattr__") and not inspect.ismodule(obj):
                    return {"status": "unknown"}
                return {"status": "missing", "missing": name, "owner": owner,
                        "names": public(obj)}
        except Exception:  # noqa: BLE001
            return {"status": "unknown"}
        obj = nxt
        owner = owner + "." + name
    return {"status": "ok", "obj": obj}


def keywords(obj, kwargs):
    if not kwargs or not callable(obj):
        return [], []
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return [], []
    params = sig.parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return [], []
    ok = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return [k for k in kwargs if k not in ok], sorted(ok)


def main():
    with open("queries.json", encoding="utf-8") as f:
        queries = json.load(f)
    answers = []
    real_out = sys.stdout
    for q in queries:
        sys.stdout = io.StringIO()  # packages that print on import must not break the answer
        try:
            r = resolve(q["path"])
            obj = r.pop("obj", None)
            if r["status"] == "ok":
                r["bad_kwargs"], r["params"] = keywords(obj, q.get("kwargs") or [])
        except BaseException:  # noqa: BLE001
            r = {"status": "unknown"}
        finally:
            sys.stdout = real_out
        r["id"] = q["id"]
        answers.append(r)
    real_out.write(MARK + json.dumps(answers) + "\n")
    real_out.flush()


main()
