"""`papercoder report OUT [--open]`."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import typer
from rich.text import Text

from papercoder.console import console, err_console


def _open(path: Path) -> bool:
    """Whether a web browser took the report (False when none is found or it failed)."""
    try:
        return bool(webbrowser.open(path.resolve().as_uri()))
    except webbrowser.Error:
        return False


def report(
    out: Path = typer.Argument(..., help="The output folder of a run."),
    open_: bool = typer.Option(False, "--open", help="Open the report in the web browser."),
) -> None:
    """Write OUT/report.html: the run, its design, code, checks and scores on one page."""
    from papercoder.report import write_report

    path = write_report(out)
    size = path.stat().st_size
    console.print(Text(f"Report written to {path} ({size / 1e6:.1f} MB)."))
    if open_ and not _open(path):
        # The report is written (exit 0); that it could not be shown is said, on stderr.
        err_console.print(Text(f"No web browser could be started here; open "
                               f"{path.resolve().as_uri()} in one."), soft_wrap=True)
