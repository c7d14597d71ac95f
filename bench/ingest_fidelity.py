"""How faithfully papercoder reads a PDF, measured against a careful transcription.

Usage: python bench/ingest_fidelity.py [DIR ...]   (default: ../shared/papers/*)

Each DIR holds paper.pdf and paper.md (the reference: Markdown with LaTeX math, headings
as `#` lines or `\\section*{...}` commands). For each paper the default extractor (pypdf)
reads the PDF and we print:

- heading recall: share of the reference's section headings that the Paper holds as
  section headings. Both sides are normalised the same way (LaTeX to text, NFKC, case
  folded, only letters and digits kept, leading section numbers removed) and matched as
  multisets. Text that merely appears in the body does not count.
- word recall / precision: bag-of-words overlap between the reference and
  Paper.to_markdown(), both with LaTeX commands dropped, their arguments kept, Greek
  letters as Unicode, operators that print as words such as \\log kept as the word; words
  are maximal runs of Unicode letters or digits, case folded, numbers included.
- bigram recall (extra, no target): the same overlap for pairs of neighbouring words, so
  that reading order (columns, floats) shows.
- display equations (strict; bench/fidelity_metric.py): the reference equation and every
  window of one to six consecutive lines of Paper.to_markdown() become normalised token
  streams (one token per symbol, LaTeX commands and Unicode mapped to the same characters,
  fonts/accents/sizing/spacing dropped, equation numbers dropped, and the structure as
  tokens: ^{ } _{ } \\frac{ }{ } \\sqrt{ }). The best window by sequence alignment
  (difflib ratio) decides. readable: ratio >= 0.9 AND every superscript, subscript, limit of
  a big operator, numerator, denominator and root extent of the reference is found with
  the same contents AND the brackets come in the same order. damaged: ratio >= 0.5 but
  not readable. lost: the rest.
- control / private: C0 and C1 control characters (other than newline and tab) and
  private-use characters in the Markdown. Both must be 0.
- boxes: algorithm boxes of the reference (fenced blocks starting "Algorithm N") that come
  out contiguous and in order: from the box title, 85% of its words align within a window
  at most 1.15 times its length, with no heading inside.
- seconds per page: wall time of read_pdf (open + layout + structure) / pages, one run.
"""

from __future__ import annotations

import re
import sys
import time
import unicodedata
from collections import Counter
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from fidelity_metric import GREEK as MATH_GREEK  # noqa: E402
from fidelity_metric import (  # noqa: E402
    EquationFinder,
    algorithm_boxes,
    bad_chars,
    box_contiguous,
    grade,
    tokens,
    words_in_order,
)

from papercoder.paper.pdf import read_pdf  # noqa: E402

# The maths tokens' Greek letters (variants such as \vartheta as the plain letter, which the
# words' NFKC would make of them anyway), and \ell as the letter it prints as.
GREEK = {**MATH_GREEK, "ell": "l"}
# Operators LaTeX prints as words (\log x shows "log" in the PDF).
WORD_COMMANDS = {"log", "exp", "ln", "min", "max", "sin", "cos", "tan", "tanh", "sinh",
                 "cosh", "arg", "lim", "det", "sup", "inf", "Pr", "dim", "ker", "deg", "gcd",
                 "liminf", "limsup", "argmin", "argmax"}
_HEADING_MD = re.compile(r"^#{1,6}\s+(.+?)\s*#*$")
_HEADING_TEX = re.compile(r"^\\(?:sub){0,2}section\*?\{(.+)\}\s*$")
_DISPLAY = re.compile(r"\\\[(.+?)\\\]|\$\$(.+?)\$\$|\\begin\{(equation|align|gather|multline|"
                      r"eqnarray)\*?\}(.+?)\\end\{\3\*?\}", re.S)
_HTML_TAG = re.compile(r"</?(?:table|thead|tbody|tfoot|tr|td|th|br|hr|sup|sub|span|div|p|b|i|u"
                       r"|em|strong|img|a|caption|col|colgroup|center|font)"
                       r"""(?:\s+[a-z-]+(?:=(?:"[^"<>]*"|'[^'<>]*'|[^\s<>$"']+))?)*\s*/?>""",
                       re.I)
_NUMBER_PREFIX = re.compile(r"^\s*(?:[A-Z]|\d{1,2})(?:\s?[.．]\s?\d{1,2})*(?:[.．]\s*|\s+)")


def latex_to_text(s: str, comments: bool = True) -> str:
    """LaTeX/Markdown to plain words: commands dropped (Greek kept as letters), arguments
    kept, markup symbols removed. ``comments``: "%" starts a LaTeX comment (the reference);
    in an extraction a "%" is a per cent sign."""
    s = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", s)  # images
    if comments:
        s = re.sub(r"(?<!\\)%.*", " ", s)
    s = re.sub(r"\\(begin|end)\{[^}]*\}(\{[^}]*\})?", " ", s)
    s = re.sub(r"\\([A-Za-z]+)", lambda m: f" {GREEK[m.group(1)]} " if m.group(1) in GREEK
               else f" {m.group(1)} " if m.group(1) in WORD_COMMANDS else " ", s)
    s = re.sub(r"\\.", " ", s)
    s = _HTML_TAG.sub(" ", s)  # HTML tables; maths such as "a < b > c" is kept
    return s


def words(text: str) -> Counter[str]:
    return Counter(words_in_order(text))


def bigrams(text: str) -> Counter[tuple[str, str]]:
    """Pairs of neighbouring words: sensitive to reading order, unlike the bag of words."""
    return Counter(pairwise(words_in_order(text)))


def norm_heading(h: str) -> str:
    h = unicodedata.normalize("NFKC", h)
    h = _NUMBER_PREFIX.sub("", h)
    return "".join(words_in_order(latex_to_text(h)))  # its letters and digits only


def reference(md: str) -> tuple[list[str], list[str], str]:
    """Headings, display equations and full text of a reference transcription."""
    heads = []
    for line in md.splitlines():
        m = _HEADING_MD.match(line.strip()) or _HEADING_TEX.match(line.strip())
        if m:
            heads.append(m.group(1))
    eqs = [next(g for g in (m.group(1), m.group(2), m.group(4)) if g)
           for m in _DISPLAY.finditer(md)]
    return heads, eqs, md


def measure(d: Path) -> dict[str, float | int | str] | None:
    pdf, md = d / "paper.pdf", d / "paper.md"
    if not pdf.is_file() or not md.is_file():
        print(f"skip {d}: needs paper.pdf and paper.md")
        return None
    ref_heads, ref_eqs, ref_text = reference(md.read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    paper = read_pdf(pdf)
    elapsed = time.perf_counter() - t0
    from pypdf import PdfReader

    pages = len(PdfReader(pdf).pages)
    got = Counter(norm_heading(s.heading) for s in paper.sections)
    want = Counter(norm_heading(h) for h in ref_heads)
    hit = sum((got & want).values())
    missing = sorted((want - got).elements())
    extracted = paper.to_markdown()
    # The extraction's maths is LaTeX too now: both sides get the same clean-up.
    plain = latex_to_text(extracted, comments=False)
    rw, ew = words(latex_to_text(ref_text)), words(plain)
    common = sum((rw & ew).values())
    rb, eb = bigrams(latex_to_text(ref_text)), bigrams(plain)
    bigram_recall = sum((rb & eb).values()) / max(sum(rb.values()), 1)
    finder = EquationFinder(extracted)
    grades = Counter(grade(tokens(e), finder) for e in ref_eqs)
    control, private = bad_chars(extracted)
    boxes = algorithm_boxes(ref_text)
    boxes_ok = sum(box_contiguous(list(words_in_order(latex_to_text(b))), extracted)
                   for b in boxes)
    return {
        "paper": d.name, "pages": pages,
        "headings": f"{hit}/{sum(want.values())}",
        "heading_recall": hit / max(sum(want.values()), 1),
        "word_recall": common / max(sum(rw.values()), 1),
        "word_precision": common / max(sum(ew.values()), 1),
        "bigram_recall": bigram_recall,
        "equations": len(ref_eqs),
        "readable": grades["readable"], "damaged": grades["damaged"], "lost": grades["lost"],
        "readable_share": grades["readable"] / max(len(ref_eqs), 1),
        "control": control, "private": private,
        "boxes": f"{boxes_ok}/{len(boxes)}",
        "s_per_page": elapsed / max(pages, 1),
        "missing": "; ".join(missing[:12]),
    }


def main(argv: list[str]) -> int:
    dirs = [Path(a) for a in argv] or sorted((ROOT.parent / "shared" / "papers").glob("*"))
    if not dirs:
        print("skip: no paper directories (../shared is absent)")
        return 0
    rows = []
    for d in dirs:
        if not d.is_dir():
            print(f"skip {d}: not found")
            continue
        r = measure(d)
        if r is not None:
            rows.append(r)
    if not rows:
        print("nothing measured")
        return 0
    cols = ["paper", "pages", "headings", "heading_recall", "word_recall", "word_precision",
            "bigram_recall", "equations", "readable", "damaged", "lost", "readable_share",
            "control", "private", "boxes", "s_per_page"]
    fmt = {"heading_recall": "{:.3f}", "word_recall": "{:.3f}", "word_precision": "{:.3f}",
           "bigram_recall": "{:.3f}", "readable_share": "{:.2f}", "s_per_page": "{:.3f}"}
    table = [[fmt.get(c, "{}").format(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)))
    n_eq = sum(int(r["equations"]) for r in rows)
    n_ok = sum(int(r["readable"]) for r in rows)
    print(f"all papers: {n_ok}/{n_eq} display equations readable "
          f"({n_ok / max(n_eq, 1):.0%}), damaged {sum(int(r['damaged']) for r in rows)}, "
          f"lost {sum(int(r['lost']) for r in rows)}")
    print("targets: heading_recall >= 0.9, word_recall >= 0.95, word_precision >= 0.9, "
          "readable_share >= 0.70, control = private = 0, every box contiguous, "
          "s_per_page <= 0.2")
    for r in rows:
        if r["missing"]:
            print(f"{r['paper']}: headings not found: {r['missing']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
