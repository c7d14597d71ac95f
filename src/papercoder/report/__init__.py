"""The run as one self-contained HTML page: ``OUT/report.html``.

Library entry points: :func:`write_report` (one output folder) and :func:`write_index`
(a page linking several reports, for ``papercoder batch``).
"""

from __future__ import annotations

from pathlib import Path

from papercoder.errors import ConfigError
from papercoder.report.index import write_index
from papercoder.report.loader import load

__all__ = ["write_report", "write_index", "build_report"]

REPORT_NAME = "report.html"


def build_report(out: Path) -> str:
    """The report page of the output folder ``out``, as a string."""
    from papercoder.report.render import build_html

    return build_html(load(Path(out)))


def write_report(out: Path) -> Path:
    """Write ``out/report.html`` from whatever the output folder holds (a failed or partial
    run included) and return its path."""
    from papercoder.outdir.paths import write_inside

    out = Path(out)
    if not out.is_dir():
        raise ConfigError(f"{out} is not a folder; give the output folder of a run.")
    if not any((out / p).exists() for p in ("run.json", "artifacts", "repo")):
        raise ConfigError(f"{out} holds no run (no run.json, artifacts/ or repo/); give "
                              "the output folder of `papercoder run`.")
    html = build_report(out).encode("utf-8", "replace").decode("utf-8")
    target = out / REPORT_NAME
    if target.is_symlink():  # never write through a link planted in the output folder
        target.unlink()
    return write_inside(out, REPORT_NAME, html)
