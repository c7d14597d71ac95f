"""The contract in a run: stage ``requirements``, the logic design's mapping, the prompts.

``run(p)`` extracts ``artifacts/requirements.json`` (or loads it when present: the user may
have edited it, and ``--from planning`` then plans against the edit). ``covering_check`` is
the logic design's extra check; ``apply_mapping`` records which file takes which
requirement; ``for_file`` is what a file's analysis and coding prompts list.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from papercoder.errors import ConfigError, FormatError
from papercoder.models.base import Completion, Message
from papercoder.requirements.extract import (
    MAX_REQUIREMENTS,
    Outcome,
    extract,
    merge,
    section_groups,
)
from papercoder.requirements.quotes import QuoteIndex
from papercoder.requirements.schema import CATEGORIES, Contract, ExtractionAnswer, load_contract

if TYPE_CHECKING:
    from papercoder.pipeline.runner import Pipeline
    from papercoder.pipeline.schemas import LogicDesign

log = logging.getLogger("papercoder")
ARTIFACT = "requirements.json"
MAX_ADDENDUM_CHARS = 60_000


def read_addendum(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ConfigError(f"The addendum {path} could not be read ({type(e).__name__}); check "
                          "the --addendum path.") from None
    return text[:MAX_ADDENDUM_CHARS]


def paper_index(p: Pipeline, addendum: str) -> QuoteIndex:
    return QuoteIndex(p.paper.to_markdown(include_references=False), addendum)


def _said(p: Pipeline, message: str) -> None:
    """Logged (papercoder.log); the console's last line sums the contract up."""
    log.info("contract: %s", message)


async def run(p: Pipeline) -> None:
    m = p.manifest
    p.progress.stage("requirements", 1)
    existing = p.ws.read_artifact(ARTIFACT)
    if existing is not None:
        p.contract = load_contract(existing)
        if not p.contract.requirements:  # the user emptied it: the published method
            p.contract = None
            m.requirements = {"status": "empty", "reason": "artifacts/requirements.json holds "
                              "no requirements"}
            p.progress.advance("requirements")
            return
        # what an earlier session recorded (its audit) stays until this one replaces it
        m.requirements = {**(m.requirements or {}), **summary(p.contract), "status": "done",
                          "source": "artifact"}
        p.progress.advance("requirements")
        return
    addendum = read_addendum(p.opts.addendum)
    index = paper_index(p, addendum)
    parts = section_groups(p.paper)
    limit = MAX_REQUIREMENTS if len(parts) == 1 else max(10, MAX_REQUIREMENTS // len(parts) + 5)

    async def ask(_: list[Message], label: str | None, check: Callable[[Completion], Any]
                  ) -> Completion:
        prompt = p.render("requirements", part=label or "", addendum=addendum, limit=limit)
        if label is None:
            msgs = p.prefix() + [{"role": "user", "content": prompt}]
        else:
            text = next(x.text for x in parts if x.label == label)
            msgs = [{"role": "system", "content": p.render("system")},
                    {"role": "user", "content": p.render(
                        "requirements_part", title=p.paper.title, part=label, text=text)},
                    {"role": "user", "content": prompt}]
        return await p.call(msgs, stage="requirements", file=label, schema=ExtractionAnswer,
                            check=check, allow_closed=False)

    outcomes, failures = await extract(ask, parts, index)
    contract, duplicates, over = merge(outcomes)
    if outcomes and not contract.requirements:
        failures.append(f"none of the {len(contract.dropped)} requirements' quotes was found "
                        "in the paper")
        outcomes = []
    if not outcomes:
        reason = failures[-1] if failures else "no answer"
        p.contract = None
        m.requirements = {"status": "failed", "reason": reason}
        p.warn(f"the paper's requirements could not be extracted ({reason}); the run goes on "
               "with the published method, without a contract")
        p.progress.advance("requirements")
        return
    if failures:  # some parts answered
        p.warn(f"{len(failures)} of {len(parts)} parts of the paper gave no requirements "
               f"({failures[0]}); the contract holds the others'")
    if over:
        p.warn(f"the contract holds at most {MAX_REQUIREMENTS} requirements; {over} more were "
               "left out (listed as dropped in artifacts/requirements.json)")
    p.contract = contract
    p.ws.write_artifact(ARTIFACT, contract.to_json())
    m.requirements = {**summary(contract), "status": "done", "source": "extracted",
                      "parts": len(parts), "duplicates": duplicates,
                      "bound": MAX_REQUIREMENTS, "bound_reached": bool(over)}
    n_bad = sum(1 for d in contract.dropped if "bound" not in d.reason)
    _said(p, f"{len(contract.requirements)} requirements extracted"
          + (f", {n_bad} dropped (quote not in the paper)" if n_bad else "")
          + f"; see {p.ws.artifacts / ARTIFACT}")
    p.save()
    p.progress.advance("requirements")


def summary(contract: Contract) -> dict[str, Any]:
    cats: dict[str, int] = {}
    for r in contract.requirements:
        cats[r.category] = cats.get(r.category, 0) + 1
    return {"total": len(contract.requirements), "dropped": len(contract.dropped),
            "categories": {c: {"total": cats[c]} for c in CATEGORIES if c in cats}}


# -- planning against the contract ---------------------------------------------------------
def listed(p: Pipeline) -> list[dict[str, Any]]:
    """The contract's requirements as the logic prompt lists them (none without one)."""
    contract: Contract | None = getattr(p, "contract", None)
    return [r.model_dump() for r in contract.requirements] if contract else []


def covering_check(p: Pipeline, inner: Callable[[Completion], LogicDesign]
                   ) -> Callable[[Completion], LogicDesign]:
    """``inner`` plus: an unknown requirement id is sent back once, then ignored (said); a
    requirement no file takes is sent back once, then left uncovered (both recorded by
    :func:`apply_mapping`)."""
    contract: Contract | None = getattr(p, "contract", None)
    if contract is None:
        return inner
    ids = contract.ids()
    state = {"asked": False, "unknown": False}

    def check(c: Completion) -> LogicDesign:
        logic = inner(c)
        unknown = sorted({r for x in logic.logic_analysis for r in x.requirements
                          if r not in ids})
        if unknown and state["unknown"]:  # sent back once: ignored (apply_mapping says so)
            return logic
        if unknown:
            state["unknown"] = True
            raise FormatError(
                f"The logic design names requirements that are not in the list: "
                f"{', '.join(unknown[:20])}. Use only these ids: {', '.join(ids)}. Send the "
                "whole JSON object again.",
                user_message=f"the logic design named unknown requirements "
                f"({', '.join(unknown[:8])})")
        taken = {r for x in logic.logic_analysis for r in x.requirements}
        missing = [i for i in ids if i not in taken]
        if missing and not state["asked"]:
            state["asked"] = True
            raise FormatError(
                f"No file takes these requirements: {', '.join(missing)}. Add each one to the "
                "\"requirements\" of the file that implements it, and send the whole JSON "
                "object again.", user_message=f"{len(missing)} requirements had no file")
        return logic

    return check


def apply_mapping(p: Pipeline) -> None:
    """Which file takes which requirement, from the logic design; the requirements no file
    takes are listed as uncovered (said once). Unknown ids in an edited logic.json are
    ignored (said)."""
    contract: Contract | None = getattr(p, "contract", None)
    p.file_requirements = {}
    if contract is None or p.logic is None:
        return
    ids = set(contract.ids())
    unknown: set[str] = set()
    for x in p.logic.logic_analysis:
        if x.file not in p.deps:
            continue
        unknown |= {r for r in x.requirements if r not in ids}
        mine = [r for r in dict.fromkeys(x.requirements) if r in ids]
        if mine:
            p.file_requirements[x.file] = mine
    taken = {r for rs in p.file_requirements.values() for r in rs}
    uncovered = [i for i in contract.ids() if i not in taken]
    m = p.manifest
    m.requirements = {**(m.requirements or {}), "uncovered": uncovered}
    if unknown:
        p.warn(f"the logic design names requirements not in the contract ("
               f"{', '.join(sorted(unknown)[:10])}); they are ignored")
    if uncovered:
        p.warn(f"{len(uncovered)} requirements are taken by no file of the logic design "
               f"(uncovered): {', '.join(uncovered[:20])}")


def for_file(p: Pipeline, file: str) -> list[dict[str, Any]]:
    """The requirements ``file`` implements, with their quotes (for its prompts)."""
    contract: Contract | None = getattr(p, "contract", None)
    if contract is None:
        return []
    by_id = contract.by_id()
    return [by_id[r].model_dump() for r in getattr(p, "file_requirements", {}).get(file, [])
            if r in by_id]


__all__ = ["run", "covering_check", "apply_mapping", "for_file", "listed", "summary",
           "Outcome"]
