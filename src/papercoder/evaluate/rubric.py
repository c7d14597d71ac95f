"""PaperBench rubric trees: reading, Code-Dev pruning, leaf context, aggregation.

Semantics (PaperBench's, re-implemented):

* a node has ``id``, ``requirements``, ``weight`` and ``sub_tasks``; leaves have
  ``task_category`` (Code Development, Code Execution, Result Analysis);
* Code-Dev grading keeps only Code Development leaves, with their original weights, and
  drops inner nodes left without children; when nothing is left, the whole task becomes one
  Code Development leaf;
* a leaf scores 0 or 1 (the paper contract's leaves, ``--rubric auto``: 1, 0.5 or 0 for
  met, partial, unmet); an inner node scores the weighted mean of its children, and 0 when
  their weights sum to 0; the paper's score is the root's.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from papercoder.errors import ConfigError

CODE_DEV = "Code Development"
CODE_EXEC = "Code Execution"
RESULT = "Result Analysis"
CATEGORIES = (CODE_DEV, CODE_EXEC, RESULT)
MAX_DEPTH = 64
MAX_NODES = 20000


@dataclass
class Node:
    id: str
    requirements: str
    weight: float
    task_category: str | None = None
    sub_tasks: list[Node] = field(default_factory=list)
    # results
    score: float | None = None
    valid: bool | None = None
    explanation: str = ""
    files: list[str] = field(default_factory=list)
    flag: str | None = None
    """Why a leaf was not graded normally (e.g. ``no-log``)."""

    @property
    def is_leaf(self) -> bool:
        return not self.sub_tasks

    def leaves(self) -> list[Node]:
        if self.is_leaf:
            return [self]
        return [x for c in self.sub_tasks for x in c.leaves()]

    def walk(self) -> list[Node]:
        return [self] + [x for c in self.sub_tasks for x in c.walk()]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "requirements": self.requirements,
                             "weight": self.weight, "score": self.score}
        if self.is_leaf:
            d.update(task_category=self.task_category, valid=self.valid,
                     explanation=self.explanation, files=list(self.files))
            if self.flag:
                d["flag"] = self.flag
        d["sub_tasks"] = [c.to_dict() for c in self.sub_tasks]
        return d


def _node(raw: Any, where: str, depth: int, count: list[int]) -> Node:
    if depth > MAX_DEPTH:
        raise ConfigError(f"The rubric is nested deeper than {MAX_DEPTH} levels at {where}; "
                          "give a PaperBench rubric.json.")
    count[0] += 1
    if count[0] > MAX_NODES:
        raise ConfigError(f"The rubric has more than {MAX_NODES} nodes; give a PaperBench "
                          "rubric.json.")
    if not isinstance(raw, dict):
        raise ConfigError(f"The rubric node at {where} is not an object; give a PaperBench "
                          "rubric.json.")
    for key in ("requirements", "weight"):
        if key not in raw:
            raise ConfigError(f"The rubric node at {where} has no '{key}'; give a PaperBench "
                              "rubric.json (nodes have id, requirements, weight, sub_tasks).")
    w = raw["weight"]
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
        raise ConfigError(f"The rubric node at {where} has weight {w!r}; weights must be "
                          "non-negative numbers.")
    subs = raw.get("sub_tasks") or []
    if not isinstance(subs, list):
        raise ConfigError(f"The rubric node at {where} has sub_tasks that are not a list.")
    nid = str(raw.get("id") or where)
    children = [_node(s, f"{where}.{i}", depth + 1, count) for i, s in enumerate(subs)]
    cat = raw.get("task_category")
    if not children and cat is not None and not isinstance(cat, str):
        raise ConfigError(f"The rubric leaf at {where} has a task_category that is not text.")
    return Node(id=nid, requirements=str(raw["requirements"]), weight=float(w),
                task_category=cat if not children else None, sub_tasks=children)


def parse_rubric(data: Any) -> Node:
    """A rubric tree from parsed JSON, or ConfigError saying what is wrong."""
    return _node(data, "root", 0, [0])


def load_rubric(path: Path) -> Node:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"The rubric {path} does not exist; check the --rubric path.") \
            from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ConfigError(f"The rubric {path} is not readable JSON ({type(e).__name__}); give "
                          "a PaperBench rubric.json.") from None
    return parse_rubric(data)


def prune(root: Node, categories: tuple[str, ...] = (CODE_DEV,)) -> Node:
    """A copy keeping only leaves of ``categories``, with their weights; inner nodes left
    without children are dropped. When nothing is left, the whole task is one Code
    Development leaf."""

    def keep(n: Node) -> Node | None:
        if n.is_leaf:
            if n.task_category in categories:
                return Node(n.id, n.requirements, n.weight, n.task_category)
            return None
        kids = [k for k in (keep(c) for c in n.sub_tasks) if k is not None]
        if not kids:
            return None
        return Node(n.id, n.requirements, n.weight, None, kids)

    kept = keep(root)
    if kept is None:
        return Node(root.id, root.requirements, root.weight, CODE_DEV)
    return kept


def category_counts(root: Node) -> dict[str, int]:
    c = Counter(leaf.task_category or "(none)" for leaf in root.leaves())
    return dict(sorted(c.items()))


def aggregate(node: Node) -> float:
    """Fill every inner node's score with the weighted mean of its children (0 when the
    weights sum to 0); leaves without a score count 0. Returns the root's score."""
    if node.is_leaf:
        if node.score is None:
            node.score = 0.0
        return node.score
    scores = [(c.weight, aggregate(c)) for c in node.sub_tasks]
    total = sum(w for w, _ in scores)
    node.score = sum(w * s for w, s in scores) / total if total > 0 else 0.0
    return node.score


def contributions(root: Node) -> dict[str, float]:
    """Each leaf's share of the root score (the product of normalised weights on its path)."""
    out: dict[str, float] = {}

    def go(n: Node, share: float) -> None:
        if n.is_leaf:
            out[n.id] = share
            return
        total = sum(c.weight for c in n.sub_tasks)
        for c in n.sub_tasks:
            go(c, share * (c.weight / total) if total > 0 else 0.0)

    go(root, 1.0)
    return out


def per_category(root: Node) -> dict[str, float]:
    """The weighted mean score of each category's leaves, weighted by their share of the
    root (a category whose leaves all have zero share gets their plain mean)."""
    share = contributions(root)
    acc: dict[str, list[tuple[float, float]]] = {}
    for leaf in root.leaves():
        acc.setdefault(leaf.task_category or "(none)", []).append(
            (share.get(leaf.id, 0.0), leaf.score or 0.0))
    out = {}
    for cat, pairs in sorted(acc.items()):
        total = sum(w for w, _ in pairs)
        out[cat] = (sum(w * s for w, s in pairs) / total if total > 0
                    else sum(s for _, s in pairs) / len(pairs))
    return out


def heaviest_failures(root: Node) -> list[tuple[Node, float]]:
    """Leaves that scored below 1, heaviest share of the root score first."""
    share = contributions(root)
    failed = [(leaf, share.get(leaf.id, 0.0)) for leaf in root.leaves()
              if (leaf.score or 0.0) < 1.0]
    return sorted(failed, key=lambda x: -x[1])


@dataclass
class LeafContext:
    leaf: Node
    ancestors: list[Node]
    """Root first."""
    preceding: list[list[Node]]
    """For each level (root's children first, the leaf's own siblings last), the siblings
    that come before the path at that level."""


def contexts(root: Node) -> list[LeafContext]:
    out: list[LeafContext] = []

    def go(n: Node, path: list[Node], before: list[list[Node]]) -> None:
        if n.is_leaf:
            out.append(LeafContext(n, path, before))
            return
        for i, c in enumerate(n.sub_tasks):
            go(c, path + [n], before + [n.sub_tasks[:i]])

    go(root, [], [])
    return out


def outline(ctx: LeafContext) -> str:
    """The criteria leading to a leaf, as an indented outline: each ancestor preceded by its
    earlier siblings, then the leaf's earlier siblings, then the leaf (marked)."""
    lines: list[str] = []
    chain = ctx.ancestors + [ctx.leaf]
    for depth, node in enumerate(chain):
        pad = "  " * depth
        if depth > 0:
            for sib in ctx.preceding[depth - 1]:
                lines.append(f"{pad}- (earlier criterion) {sib.requirements}")
        mark = ">>> TO GRADE: " if node is ctx.leaf else ""
        lines.append(f"{pad}- {mark}{node.requirements}")
    return "\n".join(lines)
