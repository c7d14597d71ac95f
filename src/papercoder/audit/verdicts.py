"""The audit answer, its evidence check, and where the code implements each requirement."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from papercoder.errors import FormatError

VERDICTS = ("met", "partial", "unmet")
MARKER = re.compile(r"#\s*paper:\s*(R\d{1,4}(?:\s*[,;]\s*R\d{1,4})*)", re.I)
MAX_EVIDENCE_CHARS = 2000


class Evidence(BaseModel):
    file: str = Field(default="", max_length=300)
    quote: str = Field(default="", max_length=MAX_EVIDENCE_CHARS)


class Grade(BaseModel):
    id: str = Field(max_length=12)
    verdict: Literal["met", "partial", "unmet"]
    evidence: list[Evidence] = Field(default_factory=list, max_length=12)
    reason: str = Field(default="", max_length=2000)

    @field_validator("verdict", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        return str(v).strip() if v is not None else ""


class AuditAnswer(BaseModel):
    """``{"requirements": [{"id", "verdict", "evidence": [{"file", "quote"}], "reason"}]}``."""

    requirements: list[Grade] = Field(max_length=200)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


MIN_EVIDENCE_CHARS = 8
"""Shorter snippets ("import", "x = 1") prove nothing and count as not found."""


def find_line(code: str, snippet: str) -> int | None:
    """The 1-based line where ``snippet`` starts in ``code`` (exactly, else ignoring
    differences of whitespace), or None when it is not in the code or too short."""
    s = snippet.strip()
    if len(_squash(s)) < MIN_EVIDENCE_CHARS:
        return None
    at = code.find(s)
    if at >= 0:
        return code.count("\n", 0, at) + 1
    if _squash(s) not in _squash(code):
        return None
    first = _squash(s.splitlines()[0])
    for n, line in enumerate(code.splitlines(), 1):
        if first and first in _squash(line):
            return n
    return 1


def check_grades(answer: AuditAnswer, ids: list[str], file: str,
                 code: Mapping[str, str]) -> list[dict[str, Any]]:
    """The grades of ``ids`` with their evidence checked against ``code``. FormatError (sent
    back) when an id is missing or unknown; evidence not found makes the verdict unmet."""
    got = {g.id: g for g in answer.requirements}
    unknown = sorted(set(got) - set(ids))
    missing = [i for i in ids if i not in got]
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"grade every requirement listed; missing: {', '.join(missing)}")
        if unknown:
            parts.append(f"grade only the requirements listed; not listed: "
                         f"{', '.join(unknown[:10])}")
        raise FormatError("In your audit, " + "; ".join(parts) + ". Send the whole JSON "
                          "object again.", user_message=f"the audit of {file} did not grade "
                          "exactly the requirements asked")
    out = []
    for i in ids:
        g = got[i]
        evidence: list[dict[str, Any]] = []
        bad: list[str] = []
        for e in g.evidence:
            where = (e.file or file).strip()
            line = find_line(code[where], e.quote) if where in code else None
            if line is None:
                bad.append(f"{where}: {e.quote.strip()[:80]!r}")
            else:
                evidence.append({"file": where, "quote": e.quote.strip(), "line": line})
        verdict, reason = g.verdict, g.reason.strip()
        if bad and verdict != "unmet":
            verdict, reason = "unmet", "evidence not found: " + "; ".join(bad[:3]) + (
                f" (the judge said {g.verdict}: {reason})" if reason else "")
        elif not evidence and verdict != "unmet":
            verdict, reason = "unmet", "no evidence given" + (
                f" (the judge said {g.verdict}: {reason})" if reason else "")
        out.append({"id": i, "verdict": verdict, "judge_verdict": g.verdict,
                    "reason": reason, "evidence": evidence})
    return out


def markers(code: Mapping[str, str]) -> dict[str, list[dict[str, Any]]]:
    """``# paper: R7`` comments: requirement id -> [{file, line}]."""
    found: dict[str, list[dict[str, Any]]] = {}
    for f, text in code.items():
        for n, line in enumerate(text.splitlines(), 1):
            for m in MARKER.finditer(line):
                for rid in re.split(r"\s*[,;]\s*", m.group(1)):
                    found.setdefault(rid.upper(), []).append({"file": f, "line": n})
    return found
