"""The writing order: dependencies reconciled with the file list, then a topological sort."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from papercoder.errors import FormatError

# Files papercoder writes itself; the model never codes them.
GENERATED = {"config.yaml", "requirements.txt", "README.md"}
ENTRY_POINTS = ("main.py", "run.py", "train.py", "__main__.py", "app.py", "cli.py")


def entry_point(files: Sequence[str]) -> str | None:
    names = {f.rsplit("/", 1)[-1]: f for f in files}
    for cand in ENTRY_POINTS:
        if cand in names:
            return names[cand]
    return None


def _module_names(f: str) -> set[str]:
    stem = f[:-3] if f.endswith(".py") else f
    return {stem.replace("/", "."), stem.rsplit("/", 1)[-1]}


def infer_dependencies(file: str, notes: str, files: Sequence[str]) -> list[str]:
    """Files named in a note's imports section (or as ``x.py`` / ``import x``)."""
    m = re.search(r"(?is)imports?\s*:?\s*\n(.*?)(?:\n\s*\n|$)", notes)
    scope = m.group(1) if m else notes
    deps = []
    for other in files:
        if other == file:
            continue
        names = _module_names(other)
        pats = [re.escape(other)] + [rf"(?:from|import)\s+{re.escape(n)}\b" for n in names]
        if m:
            pats += [rf"^[\s\-*]*{re.escape(n)}\b" for n in names]
        if any(re.search(p, scope, re.M) for p in pats):
            deps.append(other)
    return deps


def topological_order(deps: Mapping[str, Sequence[str]], preferred: Sequence[str]) -> list[str]:
    """Kahn's sort; ties follow ``preferred`` order. Raises FormatError naming a cycle."""
    rank = {f: i for i, f in enumerate(preferred)}
    remaining = {f: set(d) for f, d in deps.items()}
    order: list[str] = []
    while remaining:
        ready = sorted((f for f, d in remaining.items() if not d),
                       key=lambda f: (rank.get(f, len(rank)), f))
        if not ready:
            raise FormatError(
                f"The dependencies form a cycle: {' -> '.join(find_cycle(remaining))}. "
                "Remove a dependency so that files can be written one after another.",
                user_message=f"the plan's dependencies form a cycle "
                             f"({' -> '.join(find_cycle(remaining))})",
            )
        f = ready[0]
        order.append(f)
        del remaining[f]
        for d in remaining.values():
            d.discard(f)
    return order


def find_cycle(graph: Mapping[str, set[str]]) -> list[str]:
    start = sorted(graph)[0]
    path, seen = [start], {start: 0}
    node = start
    while True:
        nxt = sorted(d for d in graph[node] if d in graph)[0]
        if nxt in seen:
            return path[seen[nxt]:] + [nxt]
        seen[nxt] = len(path)
        path.append(nxt)
        node = nxt
