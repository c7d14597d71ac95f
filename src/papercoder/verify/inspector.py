"""Run by the repository's interpreter inside the sandbox (never imported by papercoder):
answers which dotted names exist in the installed packages and which keyword arguments their
callables take. Reads queries.json ([{"id", "path", "kwargs"}]) and prints one line,
"PAPERCODER-GROUNDING:" + JSON ([{"id", "status", "missing", "owner", "names", "bad_kwargs",
"params"}]). Written for any Python 3."""

import importlib
import inspect
import io
import json
import sys

MARK = "PAPERCODER-GROUNDING:"


def public(obj):
    try:
        return sorted(n for n in dir(obj) if not n.startswith("__"))[:5000]
    except Exception:  # noqa: BLE001
        return []


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
        except ImportError:
            continue
        except Exception:  # noqa: BLE001 - a package that fails to import: unknown
            return {"status": "unknown"}
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
                except ImportError:
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
