"""Stage ``audit``: grade each file against the requirements it was planned to implement,
repair what is partial or unmet with SEARCH/REPLACE edits, grade again.

See README.md. Calls go through the run's Caller (stage ``audit`` for grades, keyed
``audit:<file>``; stage ``repair`` for edits, keyed ``repair:<file>``), so they are logged,
cached, counted against ``--max-cost`` and a rerun pays nothing twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from papercoder.audit.verdicts import VERDICTS, AuditAnswer, check_grades, markers
from papercoder.crosscheck import unresolved_imports
from papercoder.edits import apply_to, parse_edits, unified_diff
from papercoder.errors import ContextOverflowError, FormatError, ModelOutputError
from papercoder.filecheck import check_file, lang_of
from papercoder.models.base import Completion, Message
from papercoder.outdir.record import FileRecord
from papercoder.outdir.workspace import artifact_name
from papercoder.requirements.schema import CATEGORIES, Contract
from papercoder.requirements.stage import for_file

if TYPE_CHECKING:
    from papercoder.pipeline.runner import Pipeline

log = logging.getLogger("papercoder")
VERDICTS_ARTIFACT = "audit/verdicts.json"
RANK = {"met": 2, "partial": 1, "unmet": 0, "ungraded": -1}

__all__ = ["run", "summary_line", "VERDICTS_ARTIFACT"]


def _lang(file: str) -> str:
    return lang_of(file)


def fingerprint(code: Mapping[str, str], contract: Contract, mapping: Mapping[str, list[str]],
                rounds: int) -> str:
    h = hashlib.sha256(contract.to_json().encode())
    h.update(json.dumps(mapping, sort_keys=True).encode() + str(rounds).encode())
    for f in sorted(code):
        h.update(f.encode() + b"\0" + code[f].encode() + b"\0")
    return h.hexdigest()[:20]


def _opening(p: Pipeline, file: str, code: Mapping[str, str]) -> list[Message]:
    """The start of ``file``'s audit thread: the system prompt, then the file's requirements
    (each with the paper's sentence that grounds it) and its code, as one cached message.

    The paper itself is not sent: the quotes ground each requirement in it, and the whole
    paper would make every audit and repair call pay for it again (bench/contract.py)."""
    reqs = for_file(p, file)
    prompt = p.render("audit", file=file, requirements=reqs, code=code[file],
                      lang=_lang(file), others=[f for f in code if f != file])
    return [{"role": "system", "content": p.render("system")},
            {"role": "user", "content": prompt, "cache": True}]


def _answer_text(c: Completion) -> str:
    """The audit's answer as the thread carries it on: the model's text, or (a backend that
    gave none) the checked grades in the answer's format."""
    if c.text.strip():
        return c.text
    return json.dumps({"requirements": [
        {"id": g["id"], "verdict": g["verdict"], "reason": g["reason"],
         "evidence": [{"file": e["file"], "quote": e["quote"]} for e in g["evidence"]]}
        for g in c.parsed]}, ensure_ascii=False)


async def _grade(p: Pipeline, file: str, code: dict[str, str], sem: asyncio.Semaphore,
                 threads: dict[str, list[Message]], diff: str | None = None
                 ) -> list[dict[str, Any]]:
    """Grade ``file``'s requirements. The first grade opens the file's thread; a regrade
    after a repair continues it with the diff of the edits (the file is not sent again, so
    the thread's cached start is read instead of paid anew)."""
    ids = [r["id"] for r in for_file(p, file)]
    if diff is None or file not in threads:
        msgs = _opening(p, file, code)
    else:
        msgs = threads[file] + [{"role": "user", "content": p.render(
            "audit_again", file=file, diff=diff, ids=ids)}]

    def check(c: Completion) -> list[dict[str, Any]]:
        return check_grades(c.parsed, ids, file, code)

    async with sem:
        try:
            c = await p.call(msgs, stage="audit", file=file, schema=AuditAnswer, check=check)
        except (ModelOutputError, ContextOverflowError) as e:
            p.warn(f"the audit of {file} failed ({e}); its requirements stay ungraded")
            threads.pop(file, None)
            return [{"id": i, "verdict": "ungraded", "reason": f"the audit failed: {e}",
                     "evidence": [], "file": file} for i in ids]
    threads[file] = msgs + [{"role": "assistant", "content": _answer_text(c)}]
    p.progress.advance(file)
    return [{**g, "file": file} for g in c.parsed]


async def _repair(p: Pipeline, file: str, problems: list[dict[str, Any]], code: dict[str, str],
                  sem: asyncio.Semaphore, threads: dict[str, list[Message]],
                  changed: bool) -> str | None:
    """The repaired content of ``file``, or None when no usable edit came. The request
    continues the file's audit thread (its code and the audit's answer, cached). A file the
    audit edited before (a later round) gets a new thread showing its current code, followed
    by the latest grades, so the edits copy lines that are really there."""
    by_id = p.contract.by_id()
    listed = [{**by_id[g["id"]].model_dump(), "verdict": g["verdict"], "reason": g["reason"]}
              for g in problems]
    ask = p.render("repair", file=file, problems=listed)
    thread = threads.get(file)
    if thread is None or changed:
        thread = _opening(p, file, code) + (thread[-1:] if thread else [])
    msgs = thread + [{"role": "user", "content": ask, "cache": True}]

    def check(c: Completion) -> str:
        edits = parse_edits(c.text)
        outside = sorted({e.path for e in edits if e.path != file})
        if outside:
            raise FormatError(f"Only {file} may be edited here, not {', '.join(outside)}. "
                              "Send the edits of this file again.",
                              user_message=f"the repair of {file} edited other files")
        new = apply_to({file: code[file]}, edits).get(file, code[file])
        check_file(new, file)  # the static check of the file's kind; a broken edit goes back
        return new.rstrip() + "\n"

    async with sem:
        try:
            c = await p.call(msgs, stage="repair", file=file, check=check, repairs=1)
        except (ModelOutputError, ContextOverflowError) as e:
            p.warn(f"the audit's repair of {file} failed ({e}); the file is kept as it was")
            return None
    threads[file] = msgs + [{"role": "assistant", "content": c.text}]
    return str(c.parsed)


def _combine(per_file: Mapping[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """One grade per requirement: the best over the files that take it, evidence joined."""
    out: dict[str, dict[str, Any]] = {}
    for f, grades in per_file.items():
        for g in grades:
            have = out.get(g["id"])
            if have is None:
                out[g["id"]] = {**g, "files": [f], "evidence": list(g["evidence"])}
                continue
            have["files"].append(f)
            have["evidence"] += g["evidence"]
            if RANK[g["verdict"]] > RANK[have["verdict"]]:
                have.update(verdict=g["verdict"], reason=g["reason"])
    return out


def _counts(grades: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    c = {v: 0 for v in (*VERDICTS, "ungraded")}
    for g in grades.values():
        c[g["verdict"]] += 1
    return c


async def run(p: Pipeline) -> None:
    contract: Contract | None = p.contract
    m = p.manifest
    if contract is None:
        return
    code: dict[str, str] = {}
    for f in p.order:
        text = p.ws.read_repo_file(f)
        if text is not None and f in m.files and m.files[f].status == "written":
            code[f] = text
    files = [f for f in p.order if f in code and p.file_requirements.get(f)]
    rounds_max = p.opts.audit_rounds
    fp = fingerprint(code, contract, p.file_requirements, rounds_max)
    audited = (m.requirements or {}).get("audit") or {}
    if audited.get("after") == fp and \
            p.ws.read_artifact(VERDICTS_ARTIFACT) is not None:
        _said(p, "the audit of this code was done already; its verdicts stand")
        return
    p.progress.stage("audit", len(files))
    sem = asyncio.Semaphore(p.opts.concurrency)
    threads: dict[str, list[Message]] = {}
    per_file = dict(zip(files, await asyncio.gather(*(_grade(p, f, code, sem, threads)
                                                       for f in files)), strict=True))
    edited: set[str] = set()
    grades = _combine(per_file)
    rounds: list[dict[str, Any]] = [{"round": 0, **_counts(grades), "repaired": []}]
    for rnd in range(1, rounds_max + 1):
        todo = {f: [g for g in gs if grades[g["id"]]["verdict"] in ("partial", "unmet")]
                for f, gs in per_file.items()}
        todo = {f: gs for f, gs in todo.items() if gs}
        if not todo:
            break
        p.progress.stage(f"audit round {rnd}", 2 * len(todo))
        new = await asyncio.gather(*(_repair(p, f, gs, code, sem, threads, f in edited)
                                     for f, gs in todo.items()))
        changed = {f: c for f, c in zip(todo, new, strict=True) if c is not None and c != code[f]}
        diffs: dict[str, str] = {}
        for f, content in changed.items():
            diffs[f] = unified_diff({f: code[f]}, {f: content})
            p.ws.write_artifact(f"audit/round-{rnd}/{artifact_name(f)}.diff", diffs[f])
            p.ws.write_repo_file(f, content)
            code[f] = content
            m.files.setdefault(f, FileRecord()).bytes = len(content.encode())
        edited |= set(changed)
        regraded = await asyncio.gather(*(_grade(p, f, code, sem, threads, diffs[f])
                                          for f in changed))
        per_file.update(dict(zip(changed, regraded, strict=True)))
        grades = _combine(per_file)
        rounds.append({"round": rnd, **_counts(grades), "repaired": sorted(changed)})
        p.save()
    if any(r["repaired"] for r in rounds):
        for problem in unresolved_imports(code):
            p.warn(f"after the audit's repairs: {problem}")
    record(p, contract, grades, code, rounds,
           fingerprint(code, contract, p.file_requirements, rounds_max))


def record(p: Pipeline, contract: Contract, grades: Mapping[str, Mapping[str, Any]],
           code: Mapping[str, str], rounds: list[dict[str, Any]], fp: str) -> None:
    """artifacts/audit/verdicts.json (one row per requirement) and run.json's summary."""
    marks = markers(code)
    uncovered = set((p.manifest.requirements or {}).get("uncovered") or [])
    planned = {i for ids in p.file_requirements.values() for i in ids}
    rows = []
    cats: dict[str, dict[str, int]] = {}
    for r in contract.requirements:
        g = grades.get(r.id)
        if g is not None:
            verdict, reason = g["verdict"], g.get("reason") or ""
        elif r.id in uncovered or r.id not in planned:
            verdict, reason = "uncovered", "no file of the logic design takes it"
        else:
            verdict, reason = "unmet", "the files that implement it were not written"
        rows.append({**r.model_dump(), "verdict": verdict,
                     "judge_verdict": (g or {}).get("judge_verdict"), "reason": reason,
                     "files": (g or {}).get("files") or [],
                     "evidence": (g or {}).get("evidence") or [],
                     "markers": marks.get(r.id, [])})
        c = cats.setdefault(r.category, {"total": 0, "met": 0, "partial": 0, "unmet": 0})
        c["total"] += 1
        if verdict in c:
            c[verdict] += 1
    p.ws.write_artifact(VERDICTS_ARTIFACT, json.dumps(
        {"requirements": rows, "dropped": [d.model_dump() for d in contract.dropped],
         "rounds": rounds}, indent=2, ensure_ascii=False) + "\n")
    counts = {v: sum(1 for x in rows if x["verdict"] == v) for v in (*VERDICTS, "ungraded")}
    m = p.manifest
    m.requirements = {
        **(m.requirements or {}), "total": len(rows), **counts,
        "dropped": len(contract.dropped), "uncovered": sorted(uncovered, key=_id_key),
        "categories": {c: cats[c] for c in CATEGORIES if c in cats}, "rounds": rounds,
        "audit": {"after": fp, "rounds_max": p.opts.audit_rounds},
    }
    p.save()
    _said(p, summary_line(m.requirements))


def _id_key(rid: str) -> int:
    return int(rid[1:]) if rid[1:].isdigit() else 0


def summary_line(req: Mapping[str, Any]) -> str:
    """``requirements: 41/47 met, 4 partial, 2 unmet`` (and uncovered, ungraded if any)."""
    line = (f"requirements: {req.get('met', 0)}/{req.get('total', 0)} met, "
            f"{req.get('partial', 0)} partial, {req.get('unmet', 0)} unmet")
    if req.get("uncovered"):
        line += f", {len(req['uncovered'])} uncovered"
    if req.get("ungraded"):
        line += f", {req['ungraded']} ungraded"
    return line


def _said(p: Pipeline, message: str) -> None:
    """Logged (papercoder.log); the console's last line sums the audit up."""
    log.info("audit: %s", message)
