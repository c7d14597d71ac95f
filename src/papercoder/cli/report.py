"""`papercoder report OUT [--open]`."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import typer
from rich.text import Text

from papercoder.console import console


def report(
    out: Path = typer.Argument(..., help="The output folder of a run."),
    open_: bool = typer.Option(False, "--open", help="Open the report in the web browser."),
) -> None:
    """Write OUT/report.html: the run, its design, code, checks and scores on one page."""
    from papercoder.report import write_report

    path = write_report(out)
    size = path.stat().st_size
    console.print(Text(f"Report written to {path} ({size / 1e6:.1f} MB)."))
    if open_:
        webbrowser.open(path.resolve().as_uri())
