"""Reading papers: every supported input becomes a :class:`Paper`."""

from __future__ import annotations

from pathlib import Path

from papercoder.errors import PaperError
from papercoder.paper.markdown import parse_markdown
from papercoder.paper.model import Paper, Section

__all__ = ["Paper", "Section", "load_paper", "MAX_BYTES"]

MAX_BYTES = 50 * 1024 * 1024


def _read_text(p: Path) -> str:
    data = p.read_bytes()
    if not data.strip():
        raise PaperError(f"{p} is empty; give a paper with some text in it.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PaperError(
            f"{p} is not UTF-8 text; convert it with e.g. `iconv -t UTF-8` and try again."
        ) from None


def load_paper(source: str | Path) -> Paper:
    """Read a paper from a path (Markdown or plain text here; more formats plug in below)."""
    p = Path(source).expanduser()
    if not p.exists():
        raise PaperError(f"The paper {p} does not exist; check the path.")
    if p.is_file() and p.stat().st_size > MAX_BYTES:
        raise PaperError(f"{p} is larger than {MAX_BYTES // (1024 * 1024)} MB; give the paper "
                         "itself, not a bundle.")
    suffix = p.suffix.lower()
    if suffix == ".pdf":
        from papercoder.paper.pdf import read_pdf

        return read_pdf(p)
    if suffix in (".md", ".markdown"):
        return parse_markdown(_read_text(p), source=str(p))
    if suffix in (".txt", ""):
        return parse_markdown(_read_text(p), source=str(p), source_format="text")
    raise PaperError(f"{p} has an unsupported format '{suffix}'; give a Markdown or text file.")
