"""PDF papers with pypdf: open safely, lay out the pages, then recover the structure."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping
from io import BytesIO
from pathlib import Path
from typing import Any

from papercoder.errors import PaperError
from papercoder.paper.model import Paper
from papercoder.paper.pdf_headings import OutlineEntry
from papercoder.paper.pdf_layout import layout
from papercoder.paper.pdf_pages import PageFindings
from papercoder.paper.pdf_structure import build_paper


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "form XObject invocations" not in str(record.msg):  # our own skipping of figures
            self.count += 1


@contextlib.contextmanager
def quiet_pypdf() -> Iterator[_Counter]:
    """Count pypdf's warnings instead of printing them (a damaged file can log thousands)."""
    log = logging.getLogger("pypdf")
    counter = _Counter()
    old_propagate, old_level = log.propagate, log.level
    log.addHandler(counter)
    log.propagate = False
    log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield counter
    finally:
        log.removeHandler(counter)
        log.propagate = old_propagate
        log.setLevel(old_level)


def open_pdf(data: bytes, name: str) -> Any:
    """A pypdf reader, or a PaperError that says what is wrong with the file."""
    from pypdf import PdfReader

    if not data.strip():
        raise PaperError(f"{name} is empty; give a paper with some text in it.")
    if b"%PDF-" not in data[:1024]:
        raise PaperError(f"{name} is not a PDF (no PDF header); check that the download "
                         "finished and that it is the paper itself.")
    try:
        reader = PdfReader(BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                ok = bool(reader.decrypt(""))
            except Exception:  # noqa: BLE001 - missing crypto backends, odd filters
                ok = False
            if not ok:
                raise PaperError(f"{name} is encrypted with a password; give an unprotected "
                                 "copy of the paper.")
        n = len(reader.pages)
    except PaperError:
        raise
    except Exception as e:  # noqa: BLE001 - pypdf raises many kinds on damaged files
        raise PaperError(f"{name} is damaged or truncated and cannot be read as a PDF "
                         f"({type(e).__name__}); download it again.") from None
    if n == 0:
        raise PaperError(f"{name} has no pages; download it again.")
    return reader


def _outline(reader: Any) -> list[OutlineEntry]:
    out: list[OutlineEntry] = []

    def walk(items: Any, depth: int) -> None:
        for it in items:
            if isinstance(it, list):
                walk(it, depth + 1)
                continue
            try:
                page = reader.get_destination_page_number(it)
                top = it.get("/Top")
                left = it.get("/Left")
                title = str(it.title or "").strip()
            except Exception:  # noqa: BLE001 - broken outline entries are skipped
                continue
            if title and page is not None and page >= 0:
                out.append(OutlineEntry(
                    title=title, level=depth + 1, page=page,
                    top=float(top) if isinstance(top, (int, float)) else None,
                    left=float(left) if isinstance(left, (int, float)) else None))

    try:
        walk(reader.outline, 0)
    except Exception:  # noqa: BLE001 - a broken outline means we detect headings ourselves
        return []
    return out


def read_pdf(path: Path, data: bytes | None = None, *, source: str | None = None) -> Paper:
    """Read a PDF paper with the default (pure-Python) extractor."""
    return PdfDocument.open(path, data, source=source).paper()


class PdfDocument:
    """A PDF laid out once by the default reader: its Paper, what it found per page
    (:attr:`found`), and the text of chosen pages replaced by their transcriptions."""

    def __init__(self, name: str, data: bytes, lay: Any, outline: list[OutlineEntry],
                 meta_title: str, warnings: list[str]) -> None:
        self.name = name
        self.data = data
        self.lay = lay
        self.outline = outline
        self.meta_title = meta_title
        self.warnings = warnings
        self.found = PageFindings(pages=len(lay.pages))
        """Filled by :meth:`paper`: pages with display maths or algorithms, pages spliced."""

    @property
    def pages(self) -> int:
        return len(self.lay.pages)

    @classmethod
    def open(cls, path: Path, data: bytes | None = None, *,
             source: str | None = None) -> PdfDocument:
        name = source or str(path)
        if data is None:
            data = path.read_bytes()
        warnings_out: list[str] = []
        with quiet_pypdf() as noise:
            reader = open_pdf(data, name)
            try:
                lay = layout(reader)
            except Exception as e:  # noqa: BLE001 - pypdf raises many kinds on damaged files
                raise PaperError(f"{name} is damaged and its text cannot be extracted "
                                 f"({type(e).__name__}); download it again or give the LaTeX "
                                 "source.") from None
            outline = _outline(reader)
            meta_title = ""
            try:
                meta_title = str((reader.metadata or {}).get("/Title") or "").strip()
            except Exception:  # noqa: BLE001
                pass
        n_pages = len(lay.pages)
        if lay.failed_pages and len(lay.failed_pages) == n_pages:
            raise PaperError(f"{name} is damaged and none of its pages can be read; download "
                             "it again or give the LaTeX source.")
        chars = sum(len(ln.text) for page in lay.pages for ln in page)
        if chars < 100 * n_pages:
            raise PaperError(f"{name} has no text layer (a scanned PDF?); give the LaTeX source "
                             "(e.g. the arXiv id) or an OCR'd copy.")
        if noise.count:
            warnings_out.append(f"pypdf reported {noise.count} problem(s) in the file; some "
                                "text may be missing.")
        if lay.failed_pages:
            listed = ", ".join(str(n) for n in lay.failed_pages[:10])
            more = "…" if len(lay.failed_pages) > 10 else ""
            warnings_out.append(f"Page(s) {listed}{more} could not be read; their text is "
                                "missing.")
        if lay.dropped_glyphs:
            warnings_out.append(f"{lay.dropped_glyphs} glyph(s) with no Unicode meaning "
                                "(control or private-use codes of symbol fonts) were left out.")
        if lay.rotated_chars > 500:
            warnings_out.append(f"{lay.rotated_chars} characters of rotated text (landscape "
                                "tables or figures) were left out.")
        return cls(name, data, lay, outline, meta_title, warnings_out)

    def paper(self, transcriptions: Mapping[int, str] | None = None) -> Paper:
        """The Paper; ``transcriptions`` (0-based page -> Markdown) replace the text of those
        pages (``pdf_structure._page_pieces`` says how they are spliced in)."""
        warnings_out = list(self.warnings)
        self.found = PageFindings(pages=self.pages)
        try:
            paper = build_paper(self.lay, self.outline, meta_title=self.meta_title,
                                pages=transcriptions, found=self.found)
        except Exception as e:  # noqa: BLE001 - an odd layout must not cost the user the text
            paper = _plain_paper(self.lay, self.meta_title)
            warnings_out.append(f"The structure of the PDF could not be recovered "
                                f"({type(e).__name__}); the text is given as one section.")
        paper.source = self.name
        paper.source_format = "pdf"
        paper.warnings = warnings_out + paper.warnings
        return paper


def _plain_paper(lay: Any, meta_title: str) -> Paper:
    from papercoder.paper.model import Section

    text = "\n".join(ln.text for page in lay.pages for ln in page)
    first = next((ln.text for page in lay.pages for ln in page), "Untitled")
    return Paper(title=meta_title or first[:200], sections=[Section(heading="Text", text=text)])
