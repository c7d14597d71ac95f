"""How much of a PaperBench rubric a paper contract covers (issue 21, third target).

For each shared paper with a rubric (``../shared/papers/<name>/{paper.md,addendum.md,
rubric.json}``) there is a contract extracted by hand from the paper and addendum, in the
extraction answer's format (``bench/contracts/<name>.json``), and a hand-made matching of
every rubric leaf to the requirements that cover it (``bench/contracts/<name>.map.json``:
leaf id -> requirement ids, ``[]`` when none does). ``<name>.partial.json`` lists the matched
leaves whose requirements cover only part of what the leaf checks (the topic, not the value
or detail it names). The contracts were written from the paper before the rubric was read;
the matching afterwards, reading both.

The script
1. checks every quote of each contract against the paper as papercoder reads it (the
   paper's Markdown without references, plus the addendum) with papercoder's own quote
   checker, and that the matching names only known leaves and requirements and every leaf;
2. prints, per paper and per PaperBench task category (Code Development, Code Execution,
   Result Analysis): leaves, leaves with a matching requirement, of those the ones matched
   fully (not partially), and weighted coverage of the matched leaves
   (each leaf's weight is the product of its normalised weights along the rubric's path,
   as PaperBench aggregates scores);
3. prints how the contract's categories line up with PaperBench's: matched
   (leaf, requirement) pairs by contract category and task category;
4. lists the leaves no requirement matches, or matches only partly (``--gaps``).

Usage: python bench/rubric_coverage.py [--gaps]. Exit status 1 when a quote is not in its
paper or a matching is inconsistent.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]

from papercoder.paper import load_paper  # noqa: E402
from papercoder.requirements.quotes import QuoteIndex  # noqa: E402
from papercoder.requirements.schema import CATEGORIES, Contract, load_contract  # noqa: E402

SHARED = ROOT.parent / "shared"
CONTRACTS = ROOT / "bench" / "contracts"
PAPERS = ("adaptive-pruning", "semantic-self-consistency", "sequential-neural-score-estimation")
TASKS = ("Code Development", "Code Execution", "Result Analysis")


@dataclass
class Leaf:
    id: str
    text: str
    task: str
    weight: float
    """Share of the whole rubric: the product of normalised sibling weights along the path."""


@dataclass
class Paper:
    name: str
    contract: Contract
    leaves: list[Leaf]
    matching: dict[str, list[str]]
    partial: set[str] = field(default_factory=set)
    quote_problems: list[tuple[str, str]] = field(default_factory=list)
    map_problems: list[str] = field(default_factory=list)


def rubric_leaves(node: dict[str, Any], share: float = 1.0) -> list[Leaf]:
    subs = node.get("sub_tasks") or []
    if not subs:
        return [Leaf(str(node.get("id", "")), str(node.get("requirements", "")),
                     str(node.get("task_category") or "none"), share)]
    total = sum(float(s.get("weight", 1)) for s in subs) or 1.0
    out: list[Leaf] = []
    for s in subs:
        out.extend(rubric_leaves(s, share * float(s.get("weight", 1)) / total))
    return out


def quote_index(folder: Path) -> QuoteIndex:
    """The paper and addendum as a run's requirements stage checks quotes against."""
    paper = load_paper(str(folder / "paper.md"))
    addendum = folder / "addendum.md"
    return QuoteIndex(paper.to_markdown(include_references=False),
                      addendum.read_text(encoding="utf-8") if addendum.is_file() else "")


def check_quotes(contract: Contract, index: QuoteIndex) -> list[tuple[str, str]]:
    """(requirement id, reason) for every quote that does not ground its requirement."""
    out = []
    for r in contract.requirements:
        problem = index.problem(r.quote)
        if problem is not None:
            out.append((r.id, problem))
    return out


def check_matching(matching: dict[str, list[str]], leaves: list[Leaf],
                   contract: Contract, partial: frozenset[str] = frozenset()) -> list[str]:
    known_leaves = {leaf.id for leaf in leaves}
    known_reqs = set(contract.ids())
    out = [f"leaf {k} is not in the rubric" for k in matching if k not in known_leaves]
    out += [f"leaf {leaf.id} is not in the matching" for leaf in leaves
            if leaf.id not in matching]
    out += [f"leaf {k} names unknown requirement {r}" for k, rs in matching.items()
            for r in rs if r not in known_reqs]
    out += [f"partial leaf {k} has no matching requirement" for k in sorted(partial)
            if not matching.get(k)]
    return out


def load(name: str) -> Paper:
    folder = SHARED / "papers" / name
    contract = load_contract((CONTRACTS / f"{name}.json").read_text(encoding="utf-8"),
                             f"bench/contracts/{name}.json")
    leaves = rubric_leaves(json.loads((folder / "rubric.json").read_text(encoding="utf-8")))
    raw = json.loads((CONTRACTS / f"{name}.map.json").read_text(encoding="utf-8"))
    matching = {str(k): [str(r) for r in v] for k, v in raw.items()}
    part = CONTRACTS / f"{name}.partial.json"
    partial = ({str(k) for k in json.loads(part.read_text(encoding="utf-8"))}
               if part.is_file() else set())
    p = Paper(name, contract, leaves, matching, partial)
    p.quote_problems = check_quotes(contract, quote_index(folder))
    p.map_problems = check_matching(matching, leaves, contract, frozenset(partial))
    return p


def coverage(p: Paper, task: str | None = None) -> tuple[int, int, int, float]:
    """(leaves, leaves with a matching requirement, of those the fully matched ones, weighted
    coverage) for one task category (all leaves when None); weighted coverage is the matched
    leaves' share of those leaves' weight."""
    leaves = [leaf for leaf in p.leaves if task is None or leaf.task == task]
    matched = [leaf for leaf in leaves if p.matching.get(leaf.id)]
    full = [leaf for leaf in matched if leaf.id not in p.partial]
    total = sum(leaf.weight for leaf in leaves)
    return len(leaves), len(matched), len(full), (sum(leaf.weight for leaf in matched) / total
                                                  if total else 0.0)


def alignment(papers: list[Paper]) -> dict[tuple[str, str], int]:
    """Matched (leaf, requirement) pairs by (contract category, PaperBench task category)."""
    out: dict[tuple[str, str], int] = {}
    for p in papers:
        by_id = p.contract.by_id()
        for leaf in p.leaves:
            for rid in p.matching.get(leaf.id, []):
                if rid in by_id:
                    key = (by_id[rid].category, leaf.task)
                    out[key] = out.get(key, 0) + 1
    return out


def main(argv: list[str]) -> int:
    if not (SHARED / "papers").is_dir():
        print("../shared/papers is absent: nothing to measure (the rubrics live there).")
        return 0
    names = [n for n in PAPERS if (SHARED / "papers" / n / "rubric.json").is_file()
             and (CONTRACTS / f"{n}.json").is_file()]
    papers = [load(n) for n in names]
    ok = True

    print("1. Quotes of the hand contracts, checked by papercoder's quote checker")
    for p in papers:
        n = len(p.contract.requirements)
        print(f"   {p.name:38} {n - len(p.quote_problems):>3}/{n} quotes found in the paper")
        for rid, why in p.quote_problems:
            print(f"     {rid}: {why}")
        for problem in p.map_problems:
            print(f"     matching: {problem}")
        ok &= not p.quote_problems and not p.map_problems

    print("\n2. Rubric leaves with a matching requirement (weighted = share of the rubric's "
          "weight)")
    print(f"   {'paper':38} {'category':17} {'leaves':>6} {'matched':>8} {'fully':>6} "
          f"{'weighted':>9}")
    totals: dict[str, list[int]] = {}
    for p in papers:
        for task in (*TASKS, None):
            n, m, f, w = coverage(p, task)
            if n == 0:
                continue
            label = task or "all"
            print(f"   {p.name if task == TASKS[0] else '':38} {label:17} {n:>6} {m:>8} {f:>6} "
                  f"{w:>8.0%}")
            t = totals.setdefault(label, [0, 0, 0])
            t[0] += n
            t[1] += m
            t[2] += f
    for label, (n, m, f) in totals.items():
        print(f"   {'three papers' if label == TASKS[0] else '':38} {label:17} {n:>6} {m:>8} "
              f"{f:>6} {m / n:>8.0%} (unweighted)")

    print("\n3. Category alignment: matched (leaf, requirement) pairs")
    table = alignment(papers)
    short = {"Code Development": "Code-Dev", "Code Execution": "Code-Exec",
             "Result Analysis": "Result"}
    print(f"   {'contract category':18}" + "".join(f"{short[t]:>11}" for t in TASKS))
    for cat in CATEGORIES:
        row = [table.get((cat, t), 0) for t in TASKS]
        print(f"   {cat:18}" + "".join(f"{v:>11}" for v in row))

    if "--gaps" in argv:
        print("\n4. Leaves no requirement matches, or matches only partly")
        for p in papers:
            print(f"   {p.name}")
            for leaf in p.leaves:
                if not p.matching.get(leaf.id) or leaf.id in p.partial:
                    kind = "partly " + ",".join(p.matching[leaf.id]) \
                        if leaf.id in p.partial else "none"
                    print(f"     [{short.get(leaf.task, leaf.task)}] {leaf.id[:8]} ({kind}) "
                          f"{leaf.text[:100]}")
    print("\nall quotes found, matchings consistent" if ok else "\nPROBLEMS FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
