"""No import cycle between papercoder modules, and no import against the layering of
src/papercoder/README.md. Imports inside functions count; those under `if TYPE_CHECKING:` do not."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "papercoder"
LAYERS = [{"errors", "textsafe", "console", "tokens", "config", "pyparse", "crosscheck",
           "yamlsafe", "filecheck", ""},
          {"store", "models", "outdir", "paper", "prompts", "edits"}, {"llm"}, {"ingest"},
          {"requirements", "audit"},
          {"pipeline", "verify", "evaluate", "report"}, {"batch"}, {"cli", "__main__"}]
STAGES = LAYERS[5]


def _graph() -> dict[str, set[str]]:
    mods = {".".join(("papercoder", *p.relative_to(SRC).with_suffix("").parts))
            .removesuffix(".__init__").removesuffix("."): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = {id(n) for s in ast.walk(tree) if isinstance(s, ast.If)
                and "TYPE_CHECKING" in ast.unparse(s.test) for b in s.body for n in ast.walk(b)}
        for n in ast.walk(tree):
            if id(n) in skip or not isinstance(n, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(n, ast.Import):
                names = [a.name for a in n.names]
            else:
                pkg = m if path.name == "__init__.py" else m.rpartition(".")[0]
                base = (pkg.rsplit(".", n.level - 1)[0] + "." if n.level else "") + (n.module or "")
                subs = [f"{base.strip('.')}.{a.name}" for a in n.names]  # a submodule, or a
                names = subs + [base.strip(".")] * any(x not in mods for x in subs)  # name
            graph[m] |= {x for x in names if x in mods and x != m}
    return graph


def _layer(mod: str) -> tuple[int, str]:
    top = mod.split(".")[1] if "." in mod else ""
    return next(i for i, layer in enumerate(LAYERS) if top in layer), top


def test_no_import_breaks_the_layering() -> None:
    bad = []
    for a, deps in _graph().items():
        la, ta = _layer(a)
        for b in deps:
            lb, tb = _layer(b)
            if ta != tb and (lb > la or (lb == la and la == LAYERS.index(STAGES))):
                bad.append(f"{a} -> {b}")
    assert not bad, bad


def test_no_import_cycle() -> None:
    graph, done, stack, cycles = _graph(), set(), [], []

    def visit(m: str) -> None:
        stack.append(m)
        for d in sorted(graph[m]):
            if d in stack:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in done:
                visit(d)
        stack.pop()
        done.add(m)

    for m in sorted(graph):
        if m not in done:
            visit(m)
    assert not cycles, cycles
