"""``papercoder eval REPO --paper P --rubric auto``: the paper contract as a rubric tree.

The contract is the output folder's ``artifacts/requirements.json`` when REPO is one (the
contract its run used), else it is extracted from the paper by the judge with the same
prompt a run sends (system prompt, the paper, the extraction prompt), so the run store's
cache answers it when the same model extracted it before. The tree has one node per
category (weighted by its number of requirements) and the requirements as leaves (Code
Development, weight 1), graded and aggregated as a PaperBench rubric.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from papercoder.errors import ModelOutputError, PapercoderError
from papercoder.llm import Caller
from papercoder.models.base import Completion, Message
from papercoder.paper import Paper
from papercoder.prompts import render
from papercoder.requirements.extract import MAX_REQUIREMENTS, Part, extract, merge
from papercoder.requirements.quotes import QuoteIndex
from papercoder.requirements.schema import CATEGORIES, Contract, ExtractionAnswer, load_contract

AUTO = "auto"


def is_auto(rubric: Any) -> bool:
    return rubric is not None and str(rubric) == AUTO


async def derive_contract(caller: Caller, paper: Paper, addendum: str | None,
                          root: Path) -> Contract:
    existing = root / "artifacts" / "requirements.json"
    if existing.is_file() and not existing.is_symlink():
        c = load_contract(existing.read_text(encoding="utf-8", errors="replace"),
                          str(existing))
        if c.requirements:
            return c
    index = QuoteIndex(paper.to_markdown(include_references=False), addendum or "")
    prefix: list[Message] = [
        {"role": "system", "content": render("system")},
        # as a run sends it (papercoder.pipeline.runner.prepare_paper, when the paper fits)
        {"role": "user", "content": render("paper", paper=paper.without(["references"])
                                           .to_markdown(), reductions=""), "cache": True}]
    prompt = render("requirements", part="", addendum=addendum or "", limit=MAX_REQUIREMENTS)

    async def ask(_: list[Message], label: str | None, check: Callable[[Completion], Any]
                  ) -> Completion:
        return await caller.call(prefix + [{"role": "user", "content": prompt}],
                                 stage="requirements", schema=ExtractionAnswer, check=check,
                                 allow_closed=False)

    outcomes, failures = await extract(ask, [Part(None, "")], index)
    contract, _, _ = merge(outcomes)
    if not contract.requirements:
        why = failures[0] if failures else "no requirement's quote was found in the paper"
        raise PapercoderError(f"The paper's requirements could not be extracted ({why}); "
                              "give a rubric file with --rubric instead.")
    return contract


def contract_tree(contract: Contract, title: str) -> dict[str, Any]:
    """A PaperBench-format rubric: root -> one node per category -> requirements."""
    groups = []
    for cat in CATEGORIES:
        reqs = [r for r in contract.requirements if r.category == cat]
        if not reqs:
            continue
        groups.append({"id": cat, "requirements": f"The paper's {cat} requirements are "
                       "implemented", "weight": len(reqs), "sub_tasks": [
                           {"id": r.id, "requirements": f"{r.statement} (paper, {r.section}: "
                            f"\"{r.quote}\")", "weight": 1,
                            "task_category": "Code Development", "sub_tasks": []}
                           for r in reqs]})
    return {"id": "contract", "requirements": f"{title}: the paper contract is implemented",
            "weight": 1, "sub_tasks": groups}


__all__ = ["AUTO", "is_auto", "derive_contract", "contract_tree", "ModelOutputError"]
