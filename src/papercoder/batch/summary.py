"""The batch's results: one row per paper, read back from each paper's own folder, written to
``OUTDIR/summary.json`` and ``summary.csv`` and printed as a table.

A row: ``slug``, ``source``, ``out``, ``status`` (done, partial, failed, error, stopped, not
run), ``files_written``, ``files_total``, ``cost_usd`` (generation; None when a price is
unknown), ``seconds`` (this session's wall time), ``ran`` (verify's verdict: true, false or
None when not verified), ``scores`` (``{"<mode>-<judge>": score}`` from ``OUT/eval/*/``),
``eval_cost_usd`` and ``error``.

Everything read from a paper's folder is untrusted: symbolic links and oversized files are
ignored, wrong types become None, and text shown on the console is plain, never markup.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from papercoder.outdir.paths import write_inside
from papercoder.outdir.record import read_record
from papercoder.textsafe import safe as plain

MAX_JSON = 20 * 1024 * 1024
CSV_FIELDS = ("slug", "status", "files_written", "files_total", "cost_usd", "eval_cost_usd",
              "seconds", "ran", "scores", "error", "source", "out")
def read_json(path: Path) -> Any:
    """A JSON file from an output folder, or None when absent, a link, huge or not JSON."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_JSON:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def eval_results(out: Path) -> dict[str, dict[str, Any]]:
    """``{"<mode>-<judge>": summary}`` of every grading under ``out/eval/``."""
    found: dict[str, dict[str, Any]] = {}
    root = out / "eval"
    if root.is_symlink() or not root.is_dir():
        return found
    for d in sorted(root.iterdir()):
        if d.is_symlink() or not d.is_dir():
            continue
        s = read_json(d / "summary.json")
        if isinstance(s, dict):
            found[d.name] = s
    return found


def collect(item: Any, out: Path, result: dict[str, Any] | None) -> dict[str, Any]:
    """One summary row for ``item``, from its folder and this session's ``result``."""
    from papercoder.batch.stages import smoke_ran

    record = read_record(out)[0] if out.is_dir() and not out.is_symlink() else None
    files = record.files if record is not None else {}
    written = len(record.files_with("written")) if record is not None else 0
    cost = record.totals.cost_usd if record is not None else None  # every session summed
    evals = eval_results(out)
    scores = {k: _num(v.get("score")) for k, v in evals.items()}
    eval_costs = [_num(v.get("cost_usd")) for v in evals.values()]
    eval_cost = None if not evals or any(c is None for c in eval_costs) else \
        sum(c or 0.0 for c in eval_costs)
    status = (result or {}).get("status") or (record.status if record else "not run")
    error = (result or {}).get("error") if result else (record.error if record else None)
    row = {
        "slug": item.slug, "source": item.source, "out": str(out), "status": status,
        "files_written": written, "files_total": len(files),
        "cost_usd": round(cost, 6) if cost is not None else None,
        "eval_cost_usd": round(eval_cost, 6) if eval_cost is not None else None,
        "seconds": (result or {}).get("seconds"),
        "ran": smoke_ran(record.verify if record is not None else None),
        "scores": scores,
        "error": plain(error)[:500] if error else None,
    }
    return row


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        flat = dict(r)
        flat["scores"] = ";".join(f"{k}={'' if v is None else round(v, 4)}"
                                  for k, v in (r.get("scores") or {}).items())
        flat = {k: ("" if v is None else v) for k, v in flat.items()}
        # a cell starting with = + - @ is a formula in spreadsheets: quote it as text
        for k, v in flat.items():
            if isinstance(v, str) and v[:1] in ("=", "+", "-", "@"):
                flat[k] = "'" + v
        w.writerow(flat)
    return buf.getvalue()


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    costs = [r.get("cost_usd") for r in rows]
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    return {"papers": len(rows), "by_status": by_status,
            "cost_usd": round(sum(c for c in costs if c is not None), 6),
            "unpriced_papers": sum(1 for c in costs if c is None),
            "seconds": round(sum(r.get("seconds") or 0 for r in rows), 2)}


def write_summary(outdir: Path, rows: list[dict[str, Any]], opts: Any = None) -> None:
    doc = {"papers": rows, "totals": totals(rows),
           "options": opts.to_dict() if hasattr(opts, "to_dict") else None}
    write_inside(outdir, "summary.json", json.dumps(doc, indent=2, default=str) + "\n")
    write_inside(outdir, "summary.csv", to_csv(rows))
    write_index_page(outdir, rows)


def write_index_page(outdir: Path, rows: list[dict[str, Any]]) -> None:
    """``OUTDIR/index.html``: the summary table, each paper linking its report. A page that
    cannot be written is a warning in the log, never a failed batch."""
    try:
        from papercoder.report import write_index

        index_rows = []
        for r in rows:
            scores = [v for v in (r.get("scores") or {}).values() if v is not None]
            report = Path(str(r.get("out") or "")) / "report.html"
            index_rows.append({
                "paper": r.get("slug"), "status": r.get("status"),
                "files": f"{r.get('files_written', 0)}/{r.get('files_total', 0)}",
                "cost": r.get("cost_usd"), "seconds": r.get("seconds"), "ran": r.get("ran"),
                "score": scores[0] if len(scores) == 1 else None,
                "report": str(report) if report.is_file() and not report.is_symlink()
                else None,
            })
        write_index(outdir, index_rows, title="papercoder batch")
    except Exception as e:  # noqa: BLE001 - the index must never fail the batch
        logging.getLogger("papercoder").warning("batch index page not written: %s", e)


def _money(x: Any) -> str:
    return "unknown" if x is None else f"${x:.4f}"


def table(rows: list[dict[str, Any]], title: str = "Batch") -> Table:
    """The printed summary; every cell is plain Text (paper names are never markup)."""
    score_cols = sorted({k for r in rows for k in (r.get("scores") or {})})
    t = Table(title=title)
    for col in ("paper", "status", "files", "cost", "time", "ran", *score_cols):
        t.add_column(Text(plain(col)), overflow="fold",
                     justify="left" if col in ("paper", "status") else "right")
    for r in rows:
        ran = {True: "yes", False: "no", None: "-"}[r.get("ran")]
        secs = r.get("seconds")
        cells = [plain(r["slug"]), plain(r["status"]),
                 f"{r['files_written']}/{r['files_total']}", _money(r.get("cost_usd")),
                 "-" if secs is None else f"{secs:.1f}s", ran]
        for c in score_cols:
            v = (r.get("scores") or {}).get(c)
            cells.append("-" if v is None else f"{v:.3g}")
        t.add_row(*(Text(c) for c in cells))
    return t


def failures(rows: list[dict[str, Any]]) -> list[Text]:
    return [Text(f"{plain(r['slug'])}: {plain(r['error'])}") for r in rows
            if r.get("error") and r["status"] not in ("done",)]
