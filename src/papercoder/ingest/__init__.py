"""The model reader (``--pdf-reader model``): a vision model transcribes PDF pages.

The default reader lays out the PDF and finds, per page, its display equations and algorithm
boxes (:class:`papercoder.paper.pdf_pages.PageFindings`). The pages it chose (``model``:
those with maths or algorithms; ``model-all``: every page) are rendered with pypdfium2 and
sent, one call per page, through the run's :class:`~papercoder.llm.Caller` with stage
``ingest``: logged, priced, within ``--max-cost``, and cached by the page image's SHA-256,
so no page is ever paid for twice. Each transcription is cleaned like all model text and
replaces that page's text in the Paper (``PdfDocument.paper``); a page whose transcription
is unusable (cut off, refused, empty, too long, headings missing) keeps the default text,
and the report says so.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from papercoder.errors import ConfigError, FormatError, ModelOutputError
from papercoder.llm import Caller
from papercoder.models import takes_images
from papercoder.models.base import Completion, ImagePart, Message, Model
from papercoder.paper import Paper
from papercoder.paper.pdf import PdfDocument
from papercoder.paper.pdf_render import render_pages
from papercoder.prompts import render
from papercoder.textsafe import storable

__all__ = ["READERS", "PageReport", "check_reader", "clean_transcription", "read_with_model",
           "require_images"]

READERS = ("default", "model", "model-all")
"""``--pdf-reader`` values: the pure-Python reader; a model for the pages with maths or
algorithms; a model for every page."""
STAGE = "ingest"
MAX_PAGE_CHARS = 40_000
"""A page holds a few thousand characters; a longer transcription is not a transcription."""
MAX_TOKENS = 8192
"""Answer cap per page (a dense page of LaTeX is about 3000 tokens)."""
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
_WRAPPED = re.compile(r"^\s*```[A-Za-z]*\s*\n(?P<body>.*)\n```\s*$", re.S)


def check_reader(pdf_reader: str, reader_model: str | None = None) -> None:
    if pdf_reader not in READERS:
        raise ConfigError(f"--pdf-reader must be one of {', '.join(READERS)}, not "
                          f"'{pdf_reader}'.")
    if reader_model is not None and pdf_reader == "default":
        raise ConfigError("--reader-model names the model that transcribes PDF pages, which "
                          "only happens with --pdf-reader model or model-all; add one of them "
                          "or drop --reader-model.")


def require_images(model: Model) -> None:
    """A one-sentence ConfigError, before any call, for a model that cannot take images."""
    if not takes_images(model):
        why = ("the local backend runs text-only models" if model.provider == "local" else
               "the model settings table says it takes no images")
        raise ConfigError(f"--pdf-reader model needs a model that can read images, and "
                          f"{model.name} cannot ({why}); pass --reader-model with a vision "
                          "model (e.g. openai/gpt-4.1) or use --pdf-reader default.")


def clean_transcription(text: str) -> tuple[str, int]:
    """Model text made safe for the paper: encodable, no control characters (but newline
    and tab), no private-use or bidirectional-override characters, Unix newlines, and not
    wrapped in a code fence. Returns the text and how many characters were dropped."""
    text = storable(text).replace("\r\n", "\n").replace("\r", "\n")
    kept = []
    dropped = 0
    for ch in text:
        cat = unicodedata.category(ch)
        if (cat in ("Cc", "Cs", "Co") and ch not in "\n\t") or ch in _BIDI or \
                ch in "\ufffe\uffff":
            dropped += 1
            continue
        kept.append(ch)
    out = "".join(kept).strip()
    m = _WRAPPED.match(out)
    if m and "```" not in m.group("body"):
        out = m.group("body").strip()
    return out, dropped


def _check(c: Completion) -> str:
    text, _ = clean_transcription(c.text)
    if not text:
        raise FormatError("Your answer was empty. Transcribe the page shown in the image.",
                          user_message="the transcription was empty")
    if len(text) > MAX_PAGE_CHARS:
        raise FormatError(f"Your answer is longer than any page ({len(text)} characters). "
                          "Transcribe only what is printed on the page.",
                          user_message=f"the transcription was {len(text)} characters long")
    return text


@dataclass
class PageReport:
    """What the model reader did: run.json ``paper.reader``."""

    reader: str
    model: str | None = None
    pages: int = 0
    chosen: list[int] = field(default_factory=list)
    """1-based pages sent to the model."""
    transcribed: list[int] = field(default_factory=list)
    """1-based pages whose text is the model's transcription."""
    fallback: list[dict[str, Any]] = field(default_factory=list)
    """``{"page": n, "reason": str}`` for chosen pages that kept the default reader's text."""
    dropped_chars: int = 0
    """Control, private-use or bidi characters removed from the transcriptions."""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def lines(self) -> list[str]:
        """What to tell the user, one sentence each."""
        out = []
        if self.note:
            out.append(self.note)
        if self.transcribed:
            which = (f"Page {self.transcribed[0]} was" if len(self.transcribed) == 1 else
                     f"Pages {_listed(self.transcribed)} were")
            out.append(f"{which} read by {self.model} (--pdf-reader {self.reader}).")
        for f in self.fallback:
            out.append(f"Page {f['page']} keeps the default reader's text: {f['reason']}.")
        return out


def _listed(pages: list[int]) -> str:
    return ", ".join(str(p) for p in pages)


async def read_with_model(
    doc: PdfDocument,
    *,
    caller: Caller,
    mode: str = "model",
    prompts_dir: str | Path | None = None,
    concurrency: int = 4,
    on_page: Callable[[int, str], None] | None = None,
) -> tuple[Paper, PageReport]:
    """The paper with the chosen pages transcribed by ``caller``'s model. Errors other than
    an unusable answer for one page (budget, interruption, a failing server) propagate:
    the pages answered so far are stored, so a rerun pays nothing twice."""
    check_reader(mode)
    base = doc.paper()
    report = PageReport(reader=mode, pages=doc.pages)
    if mode == "default":
        return base, report
    require_images(caller.model)
    report.model = caller.model.name
    chosen = doc.found.maths_pages() if mode == "model" else list(range(doc.pages))
    report.chosen = [p + 1 for p in chosen]
    if not chosen:
        report.note = ("The default reader found no display maths or algorithm box on any "
                       "page, so no page was sent to the model (--pdf-reader model-all sends "
                       "every page).")
        return base, report
    images = render_pages(doc.data, chosen, name=doc.name)
    prompt = render("transcribe", prompts_dir)
    texts: dict[int, str] = {}
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(page: int) -> None:
        image = images.get(page)
        if image is None:
            report.fallback.append({"page": page + 1, "reason": "the page could not be "
                                    "rendered"})
            return
        msgs: list[Message] = [{"role": "user", "content": prompt,
                                "images": [ImagePart(image, "image/png")]}]
        async with gate:
            try:
                c = await caller.call(msgs, stage=STAGE, file=f"page {page + 1}",
                                      max_tokens=min(MAX_TOKENS, caller.settings.max_output),
                                      temperature=0.0 if not caller.settings.reasoning
                                      else None, check=_check, repairs=1)
            except ModelOutputError as e:
                report.fallback.append({"page": page + 1, "reason": _reason(str(e))})
                return
        texts[page] = c.parsed
        report.dropped_chars += clean_transcription(c.text)[1]
        if on_page is not None:
            on_page(page, "transcribed")

    # Every page's call runs to its end (and is stored) before a failure is raised.
    results = await asyncio.gather(*(one(p) for p in chosen), return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    paper = doc.paper(texts)
    for page, why in sorted(doc.found.kept.items()):
        report.fallback.append({"page": page + 1, "reason": f"its transcription was not "
                                f"used ({why})"})
    report.fallback.sort(key=lambda f: f["page"])
    report.transcribed = [p + 1 for p in sorted(doc.found.spliced)]
    paper.warnings += [ln for ln in report.lines() if "keeps the default" in ln]
    return paper, report


def _reason(message: str) -> str:
    """The useful middle of a ModelOutputError: why the answer was unusable."""
    m = re.search(r"\((.*)\)", message)
    return m.group(1) if m else message.rstrip(".")
