"""The batch index: one page linking the per-paper reports, with the summary table."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from papercoder.report.loader import as_dict, number, text

INDEX_NAME = "index.html"
ROW_KEYS = ("paper", "status", "files", "cost", "seconds", "ran", "score", "report")
"""The keys of one row of :func:`write_index` (all optional):

- ``paper`` (str): the paper's title or name;
- ``status`` (str): the run's status (done, partial, failed, ...);
- ``files`` (str | int): files written, e.g. ``"7/7"``;
- ``cost`` (float | None): dollars, None when unknown;
- ``seconds`` (float | None): wall time of the paper's run;
- ``ran`` (bool | None): whether the smoke run passed (None: not run);
- ``score`` (float | None): the evaluation score, None when not evaluated;
- ``report`` (str | Path | None): the paper's report.html, absolute or relative to ``outdir``.
"""


def _href(outdir: Path, report: Any) -> str | None:
    """A relative link from the index to a report file: only a plain path, percent-quoted,
    so no scheme (javascript:, data:, ...) can get in."""
    if not isinstance(report, (str, Path)) or not str(report).strip():
        return None
    p = Path(report)
    if not p.is_absolute():
        p = outdir / p
    try:
        rel = os.path.relpath(p, outdir)
    except ValueError:  # another drive on Windows
        return None
    return "/".join(quote(part, safe="") for part in Path(rel).as_posix().split("/"))


def index_rows(outdir: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows[:100_000]:
        r = as_dict(r)
        files = r.get("files")
        out.append({
            "paper": text(r.get("paper"), 500) or "(unnamed)",
            "status": text(r.get("status"), 40) or "unknown",
            "files": text(files, 40) if isinstance(files, (str, int)) else "–",
            "cost": number(r.get("cost")), "seconds": number(r.get("seconds")),
            "ran": r.get("ran") if isinstance(r.get("ran"), bool) else None,
            "score": number(r.get("score")), "href": _href(outdir, r.get("report")),
        })
    return out


def build_index(outdir: Path, rows: list[dict[str, Any]], title: str = "papercoder batch") \
        -> str:
    from papercoder import __version__
    from papercoder.report.render import csp, environment, page_css

    view = index_rows(Path(outdir), rows)
    costs = [r["cost"] for r in view]
    total = None if any(c is None for c in costs) else sum(c for c in costs if c is not None)
    tmpl = environment().get_template("index.html.j2")
    return tmpl.render(rows=view, title=text(title, 200), csp=csp([]), css=Markup(page_css()),
                       version=__version__, total_cost=total,
                       generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def write_index(outdir: Path, rows: list[dict[str, Any]], title: str = "papercoder batch") \
        -> Path:
    """Write ``outdir/index.html``: a table of the papers of a batch, each linking its report.
    See :data:`ROW_KEYS` for the keys of a row."""
    from papercoder.outdir.paths import write_inside

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    html = build_index(outdir, rows, title).encode("utf-8", "replace").decode("utf-8")
    target = outdir / INDEX_NAME
    if target.is_symlink():
        target.unlink()
    return write_inside(outdir, INDEX_NAME, html)
