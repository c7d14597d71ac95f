"""Reading papers: every supported input becomes a :class:`Paper`.

``load_paper(source)`` takes a path (PDF, .tex, a LaTeX folder, an arXiv source archive,
S2ORC/GROBID JSON, Markdown or plain text) or an arXiv reference (``arxiv:1706.03762``,
``https://arxiv.org/abs/...``) and detects the format from the name and the first bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from papercoder.errors import PaperError
from papercoder.paper.markdown import parse_markdown
from papercoder.paper.model import Paper, Section

__all__ = ["Paper", "Section", "load_paper", "load_paper_and_pdf", "MAX_BYTES", "EXTRACTORS"]

MAX_BYTES = 50 * 1024 * 1024
EXTRACTORS = ("pypdf", "pymupdf")
"""PDF extractors: pypdf (default, pure Python) or pymupdf (pymupdf4llm, AGPL, opt-in)."""

_ARCHIVES = (".tar.gz", ".tgz", ".tar", ".gz")


def _decode(data: bytes, p: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PaperError(
            f"{p} is not UTF-8 text; convert it with e.g. `iconv -t UTF-8` and try again."
        ) from None


def _kind(p: Path, head: bytes) -> str:
    name = p.name.lower()
    if head.startswith(b"%PDF-") or name.endswith(".pdf"):
        return "pdf"
    if name.endswith(_ARCHIVES) or head[:2] == b"\x1f\x8b" or head[257:262] == b"ustar":
        return "archive"
    if name.endswith((".tex", ".ltx")):
        return "latex"
    if name.endswith(".json"):
        return "s2orc"
    if name.endswith((".md", ".markdown")):
        return "markdown"
    if name.endswith(".txt") or "." not in name:
        return "text"
    return "unknown"


def load_paper(source: str | Path, *, extractor: str = "pypdf",
               prefer_source: bool = True) -> Paper:
    """Read a paper from a path or an arXiv reference.

    A PDF that carries its arXiv id (margin stamp or metadata) is read from its LaTeX source
    on arXiv when ``prefer_source`` (equations exactly as written); the PDF is the fallback
    when arXiv cannot be reached or has no usable source. ``Paper.read_from`` says which.
    """
    return load_paper_and_pdf(source, extractor=extractor, prefer_source=prefer_source)[0]


def load_paper_and_pdf(source: str | Path, *, extractor: str = "pypdf",
                       prefer_source: bool = True) -> tuple[Paper, Any]:
    """:func:`load_paper`, and the laid-out :class:`~papercoder.paper.pdf.PdfDocument` when
    the paper was read from a PDF by the default reader (else None): the model reader
    (``--pdf-reader model``) transcribes its pages."""
    if extractor not in EXTRACTORS:
        raise PaperError(f"Unknown PDF extractor '{extractor}'; choose one of "
                         f"{', '.join(EXTRACTORS)}.")
    text = str(source).strip()
    p = Path(text).expanduser()
    if not p.exists():
        from papercoder.paper.arxiv import load_arxiv, parse_arxiv_id

        ident = parse_arxiv_id(text)
        if ident is not None:
            return load_arxiv(ident), None
        if text.lower().startswith(("http://", "https://")):
            raise PaperError(f"Only arXiv links can be fetched ({text} is not one); download "
                             "the paper and give its path.")
        raise PaperError(f"The paper {p} does not exist; check the path (or give an arXiv id "
                         "like arxiv:1706.03762).")
    if p.is_dir():
        from papercoder.paper.latex import read_latex
        from papercoder.paper.latex_source import project_from_dir

        return read_latex(project_from_dir(p)), None
    size = p.stat().st_size
    if size > MAX_BYTES:
        raise PaperError(f"{p} is larger than {MAX_BYTES // (1024 * 1024)} MB; give the paper "
                         "itself, not a bundle.")
    data = p.read_bytes()
    if not data.strip():
        raise PaperError(f"{p} is empty; give a paper with some text in it.")
    kind = _kind(p, data[:512])
    if kind == "pdf":
        if extractor == "pymupdf":
            return _read_pymupdf(p), None
        from papercoder.paper.pdf import PdfDocument

        notes: list[str] = []
        if prefer_source:
            from_source, notes = _pdf_via_source(p, data)
            if from_source is not None:
                return from_source, None
        doc = PdfDocument.open(p, data)
        doc.warnings = notes + doc.warnings
        paper = doc.paper()
        paper.read_from = "pdf"
        return paper, doc
    if kind == "archive":
        from papercoder.paper.latex import read_latex
        from papercoder.paper.latex_source import project_from_archive

        project = project_from_archive(data, str(p))
        if project.pdf is not None:
            from papercoder.paper.pdf import PdfDocument

            doc = PdfDocument.open(p, project.pdf)
            return doc.paper(), doc
        return read_latex(project), None
    if kind == "latex":
        from papercoder.paper.latex import read_latex
        from papercoder.paper.latex_source import project_from_file

        return read_latex(project_from_file(p), prefer=p.name), None
    if kind == "s2orc":
        from papercoder.paper.s2orc import loads

        return loads(_decode(data, p), source=str(p)), None
    if kind == "markdown":
        return parse_markdown(_decode(data, p), source=str(p)), None
    if kind == "text":
        return parse_markdown(_decode(data, p), source=str(p), source_format="text"), None
    raise PaperError(f"{p} has an unsupported format '{p.suffix}'; give a PDF, LaTeX (.tex, a "
                     "folder or an arXiv .tar.gz), S2ORC JSON, Markdown or a text file.")


def _pdf_via_source(p: Path, data: bytes) -> tuple[Paper | None, list[str]]:
    """The paper from the arXiv LaTeX source of the PDF at p, when the PDF names its arXiv
    id and the source can be read; else None and what happened."""
    from papercoder.paper.arxiv import arxiv_id_in_pdf, load_arxiv_source
    from papercoder.paper.pdf import open_pdf, quiet_pypdf

    try:
        with quiet_pypdf():
            ident = arxiv_id_in_pdf(open_pdf(data, str(p)))
    except PaperError:
        return None, []  # read_pdf says what is wrong with the file
    if ident is None:
        return None, []
    try:
        paper = load_arxiv_source(ident)
    except Exception as e:  # noqa: BLE001 - any failure of the source: the PDF is at hand
        why = str(e).rstrip(".") if isinstance(e, PaperError) else type(e).__name__
        return None, [f"The PDF is arXiv:{ident}, but its LaTeX source could not be used "
                      f"({why}); the PDF was read instead (--no-source skips the attempt)."]
    if paper is None:
        return None, [f"The PDF is arXiv:{ident}, but arXiv has no LaTeX source for it; the "
                      "PDF was read instead."]
    paper.read_from = f"arxiv-source:{ident}"
    paper.warnings.insert(0, f"Read from the arXiv LaTeX source of {ident} (the PDF names "
                          "it); give --no-source to read the PDF itself.")
    return paper, []


def _read_pymupdf(p: Path) -> Paper:
    """The optional pymupdf4llm extractor (AGPL; installed only on request)."""
    try:
        import pymupdf4llm
    except ImportError:
        raise PaperError("The pymupdf extractor needs pymupdf4llm (AGPL), which is not "
                         "installed; run `pip install 'papercoder[pymupdf]'` or use the "
                         "default extractor.") from None
    try:
        md = pymupdf4llm.to_markdown(str(p))
    except Exception as e:  # noqa: BLE001 - MuPDF raises its own error types
        raise PaperError(f"pymupdf4llm could not read {p} ({type(e).__name__}); try the "
                         "default extractor.") from None
    paper = parse_markdown(md, source=str(p))
    paper.source_format = "pdf"
    return paper
