"""`papercoder ingest`: show what the pipeline will read from a paper."""

from __future__ import annotations

from pathlib import Path

import typer


def ingest(
    paper: str = typer.Argument(..., help="A paper: PDF, .tex, LaTeX folder, arXiv source "
                                "archive, S2ORC JSON, Markdown, text, or an arXiv id/URL."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Write the Markdown here."),
    as_json: bool = typer.Option(False, "--json", help="Print the Paper as JSON."),
    extractor: str = typer.Option("pypdf", "--extractor",
                                  help="PDF extractor: pypdf (default) or pymupdf (needs the "
                                  "AGPL pymupdf4llm, installed separately)."),
    no_source: bool = typer.Option(False, "--no-source", help="Read a PDF as given, even "
                                   "when it names its arXiv id (default: its LaTeX source)."),
    pdf_reader: str = typer.Option("default", "--pdf-reader", help="default (pure Python), "
                                   "model (a vision model transcribes the pages with display "
                                   "maths or algorithms) or model-all (every page)."),
    reader_model: str | None = typer.Option(None, "--reader-model", help="The vision model "
                                            "for --pdf-reader model (default: the default "
                                            "model)."),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible "
                                        "endpoint for --reader-model."),
    max_cost: float | None = typer.Option(None, "--max-cost", help="Budget in USD for the "
                                          "page transcriptions."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Ignore cached transcriptions."),
) -> None:
    """Read a paper and show its sections, token counts, warnings and Markdown."""
    from rich.table import Table

    from papercoder.console import console, info, plain, warn
    from papercoder.errors import PaperError
    from papercoder.paper import load_paper

    notes: list[str] = []
    if reader_model is not None and pdf_reader == "default":
        from papercoder.ingest import check_reader

        check_reader(pdf_reader, reader_model)
    if pdf_reader != "default":
        if extractor != "pypdf":
            raise PaperError("--pdf-reader model works with the default extractor; drop "
                             "--extractor or use --pdf-reader default.")
        # The model reader lives in papercoder.ingest (it calls models); imported only here.
        from papercoder.cli.ingest import load_with_model

        p, notes, _ = load_with_model(paper, pdf_reader=pdf_reader, reader_model=reader_model,
                                      base_url=base_url, max_cost=max_cost,
                                      use_cache=not no_cache, prefer_source=not no_source)
    else:
        p = load_paper(paper, extractor=extractor, prefer_source=not no_source)
    md = p.to_markdown()
    if out is not None:
        try:
            out.write_text(md, encoding="utf-8")
        except OSError as e:
            raise PaperError(f"Cannot write {out} ({e.strerror}); choose another path.") from None
    if as_json:
        # Standard output stays pure JSON; what the page reader did goes to standard error.
        for n in notes:
            info(n)
        console.print_json(p.to_json(), ensure_ascii=True)
        return
    t = Table(title=plain(f"{p.title} ({p.source_format}, {p.estimate_tokens()} tokens)",
                          newlines=False))
    t.add_column("section")
    t.add_column("kind")
    t.add_column("tokens", justify="right")
    if p.abstract:
        from papercoder.tokens import estimate_tokens

        t.add_row("Abstract", "abstract", str(estimate_tokens(p.abstract)))
    for s in p.sections:
        t.add_row(plain("  " * (s.level - 1) + s.heading, newlines=False), plain(s.kind),
                  str(s.tokens()))
    console.print(t)
    console.print(f"{len(p.equations)} display equations, {len(p.figures)} figure captions, "
                  f"{len(p.tables)} tables, {len(p.references)} references.")
    for w in p.warnings:
        warn(w)
    for n in notes:
        if n not in p.warnings:
            console.print(plain(n), soft_wrap=True)
    if out is not None:
        console.print(plain(f"Markdown written to {out}."), soft_wrap=True)
    else:
        console.print(plain(md), soft_wrap=True)
