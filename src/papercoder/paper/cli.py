"""`papercoder ingest`: show what the pipeline will read (placeholder, being built)."""

from __future__ import annotations

from pathlib import Path

import typer


def ingest(
    paper: str = typer.Argument(..., help="A paper: path or arXiv id."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Write the Markdown here."),
    as_json: bool = typer.Option(False, "--json", help="Print the Paper as JSON."),
) -> None:
    """Read a paper and show its sections, token counts, warnings and Markdown."""
    from papercoder.console import console
    from papercoder.paper import load_paper

    p = load_paper(paper)
    if as_json:
        console.print_json(p.to_json())
        return
    md = p.to_markdown()
    if out:
        out.write_text(md, encoding="utf-8")
    console.print(md, markup=False)
