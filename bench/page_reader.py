"""What --pdf-reader model would send, without calling a model: pages chosen, rendering time,
image size and an estimate of the tokens and dollars per paper.

Usage: python bench/page_reader.py [PDF ...]   (default: ../shared/papers/*/paper.pdf)

For each PDF: pages; pages the default reader found display maths or algorithm boxes on
(what `--pdf-reader model` sends; `model-all` sends every page); seconds per page to render
with pypdfium2 and write the PNG; KB per PNG; and, for `model` and `model-all`, the input
tokens (llm.IMAGE_TOKENS per page plus the prompt) and dollars with two packaged prices,
assuming ASSUMED_OUTPUT answer tokens per page (a page of text with LaTeX). No model is
called: the dollars are estimates from the price table, not measurements.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from papercoder.llm import IMAGE_TOKENS
from papercoder.models.base import Usage
from papercoder.models.settings import cost_of
from papercoder.paper.pdf import PdfDocument
from papercoder.paper.pdf_render import render_pages
from papercoder.prompts import render
from papercoder.tokens import estimate_tokens

ROOT = Path(__file__).resolve().parents[1]
ASSUMED_OUTPUT = 1200
MODELS = ("openai/gpt-4.1", "anthropic/claude-sonnet-4-6")


def main(argv: list[str]) -> int:
    pdfs = [Path(a) for a in argv] or sorted((ROOT.parent / "shared" / "papers").glob(
        "*/paper.pdf"))
    if not pdfs:
        print("skip: no PDFs (../shared is absent)")
        return 0
    prompt = estimate_tokens(render("transcribe")) + 6
    cols = ["paper", "pages", "maths_pages", "render_s_per_page", "png_kb",
            *(f"model {m.split('/')[1]} $" for m in MODELS),
            *(f"model-all {m.split('/')[1]} $" for m in MODELS)]
    rows = []
    for pdf in pdfs:
        doc = PdfDocument.open(pdf)
        doc.paper()
        chosen = doc.found.maths_pages()
        t = time.perf_counter()
        images = render_pages(doc.data, list(range(doc.pages)), name=str(pdf))
        per_page = (time.perf_counter() - t) / max(doc.pages, 1)
        kb = sum(len(b) for b in images.values()) / max(len(images), 1) / 1024

        def dollars(n: int, model: str) -> str:
            usage = Usage(prompt_tokens=n * (IMAGE_TOKENS + prompt),
                          completion_tokens=n * ASSUMED_OUTPUT)
            c = cost_of(model, usage)
            return "?" if c is None else f"{c:.3f}"

        rows.append([pdf.parent.name, str(doc.pages), str(len(chosen)), f"{per_page:.3f}",
                     f"{kb:.0f}", *(dollars(len(chosen), m) for m in MODELS),
                     *(dollars(doc.pages, m) for m in MODELS)])
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
    print(f"estimates: {IMAGE_TOKENS} input tokens per page image + {prompt} prompt tokens, "
          f"{ASSUMED_OUTPUT} output tokens per page; a rerun costs $0 (cached by page image)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
