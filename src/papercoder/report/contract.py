"""The report's "Paper ↔ code" rows, from ``artifacts/audit/verdicts.json`` (or, before an
audit, ``artifacts/requirements.json``). Everything read is hostile: bounded and clipped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from papercoder.report.loader import as_dict, as_list, integer, read_file, text

ORDER = {"uncovered": 0, "unmet": 1, "ungraded": 2, "partial": 3, "met": 4}
"""Uncovered and unmet requirements first."""
MAX_ROWS = 500
BADGE = {"met": "b-ok", "partial": "b-warn", "unmet": "b-bad", "uncovered": "b-bad"}


def _load(out: Path, rel: str) -> dict[str, Any] | None:
    raw, clipped = read_file(out, rel, 10_000_000)
    if raw is None or clipped:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def contract_rows(out: Path, line_prefix: dict[str, str]) -> dict[str, Any] | None:
    """``{"rows": [...], "dropped": [...], "audited": bool}``, or None without a contract.
    ``line_prefix`` maps a repository file to the id prefix of its highlighted lines."""
    doc = _load(out, "artifacts/audit/verdicts.json")
    audited = doc is not None
    if doc is None:
        doc = _load(out, "artifacts/requirements.json")
    if doc is None:
        return None
    rows: list[dict[str, Any]] = []
    for r in as_list(doc.get("requirements"), MAX_ROWS):
        r = as_dict(r)
        verdict = text(r.get("verdict"), 20) or "not audited"
        places: list[dict[str, Any]] = []
        for kind, key in (("marker", "markers"), ("evidence", "evidence")):
            for loc in as_list(r.get(key), 30):
                loc = as_dict(loc)
                f, line = text(loc.get("file"), 300), integer(loc.get("line"))
                if not f:
                    continue
                href = f"#{line_prefix[f]}{line}" if f in line_prefix and line else None
                places.append({"kind": kind, "label": f"{f}:{line}" if line else f,
                               "href": href, "quote": text(loc.get("quote"), 300)})
        rows.append({"id": text(r.get("id"), 12), "category": text(r.get("category"), 20),
                     "statement": text(r.get("statement"), 600),
                     "quote": text(r.get("quote"), 1000), "section": text(r.get("section"), 200),
                     "verdict": verdict, "badge": BADGE.get(verdict, "b-none"),
                     "reason": text(r.get("reason"), 2000), "places": places})
    rows.sort(key=lambda x: ORDER.get(str(x["verdict"]), 5))
    dropped = [{"statement": text(as_dict(d).get("statement"), 600),
                "quote": text(as_dict(d).get("quote"), 1000),
                "reason": text(as_dict(d).get("reason"), 300)}
               for d in as_list(doc.get("dropped"), MAX_ROWS)]
    return {"rows": rows, "dropped": dropped, "audited": audited}
