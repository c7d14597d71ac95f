"""How faithfully papercoder reads a PDF, measured against a careful transcription.

Usage: python bench/ingest_fidelity.py [DIR ...]   (default: ../shared/papers/*)

Each DIR holds paper.pdf and paper.md (the reference: Markdown with LaTeX math, headings
as `#` lines or `\\section*{...}` commands). For each paper the default extractor (pypdf)
reads the PDF and we print:

- heading recall: share of the reference's section headings that the Paper holds as
  section headings. Both sides are normalised the same way (LaTeX to text, NFKC, case
  folded, only letters and digits kept, leading section numbers removed) and matched as
  multisets. Text that merely appears in the body does not count.
- word recall / precision: bag-of-words overlap between the reference (LaTeX commands
  dropped, their arguments kept, Greek letters as Unicode, operators that print as words
  such as \\log kept as the word) and Paper.to_markdown(); words
  are maximal runs of Unicode letters or digits, case folded, numbers included.
- bigram recall (extra, no target): the same overlap for pairs of neighbouring words, so
  that reading order (columns, floats) shows.
- display equations: a reference display equation survives when at least 80% of its
  letters and digits (same normalisation, as a multiset) occur inside one window of the
  extraction's letter/digit stream at most 1.5 times the equation's length. The PDF has no
  LaTeX, so this measures whether the equation's content is there, not its markup.
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

from papercoder.paper.pdf import read_pdf  # noqa: E402

GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "vartheta": "ϑ", "iota": "ι", "kappa": "κ",
    "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "varpi": "ϖ", "rho": "ρ",
    "varrho": "ϱ", "sigma": "σ", "varsigma": "ς", "tau": "τ", "upsilon": "υ", "phi": "φ",
    "varphi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ",
    "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ", "Pi": "Π", "Sigma": "Σ", "Upsilon": "Υ",
    "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω", "ell": "l",
}
# Operators LaTeX prints as words (\log x shows "log" in the PDF).
WORD_COMMANDS = {"log", "exp", "ln", "min", "max", "sin", "cos", "tan", "tanh", "sinh",
                 "cosh", "arg", "lim", "det", "sup", "inf", "Pr", "dim", "ker", "deg", "gcd",
                 "liminf", "limsup", "argmin", "argmax"}
_HEADING_MD = re.compile(r"^#{1,6}\s+(.+?)\s*#*$")
_HEADING_TEX = re.compile(r"^\\(?:sub){0,2}section\*?\{(.+)\}\s*$")
_DISPLAY = re.compile(r"\\\[(.+?)\\\]|\$\$(.+?)\$\$|\\begin\{(equation|align|gather|multline|"
                      r"eqnarray)\*?\}(.+?)\\end\{\3\*?\}", re.S)
_NUMBER_PREFIX = re.compile(r"^\s*(?:[A-Z]|\d{1,2})(?:\s?[.．]\s?\d{1,2})*(?:[.．]\s*|\s+)")


def latex_to_text(s: str) -> str:
    """LaTeX/Markdown to plain words: commands dropped (Greek kept as letters), arguments
    kept, markup symbols removed."""
    s = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", s)  # images
    s = re.sub(r"(?<!\\)%.*", " ", s)
    s = re.sub(r"\\(begin|end)\{[^}]*\}(\{[^}]*\})?", " ", s)
    s = re.sub(r"\\([A-Za-z]+)", lambda m: f" {GREEK[m.group(1)]} " if m.group(1) in GREEK
               else f" {m.group(1)} " if m.group(1) in WORD_COMMANDS else " ", s)
    s = re.sub(r"\\.", " ", s)
    s = re.sub(r"<[^>]+>", " ", s)  # HTML tables
    return s


def words(text: str) -> Counter[str]:
    t = unicodedata.normalize("NFKC", text).casefold()
    return Counter(re.findall(r"[^\W_]+", t))


def bigrams(text: str) -> Counter[tuple[str, str]]:
    """Pairs of neighbouring words: sensitive to reading order, unlike the bag of words."""
    w = re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", text).casefold())
    return Counter(pairwise(w))


def chars(text: str) -> list[str]:
    t = unicodedata.normalize("NFKC", text).casefold()
    return [c for c in t if c.isalnum()]


def norm_heading(h: str) -> str:
    h = unicodedata.normalize("NFKC", h)
    h = _NUMBER_PREFIX.sub("", h)
    return "".join(chars(latex_to_text(h)))


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


def equation_found(eq: list[str], stream: list[str], window_factor: float = 1.5,
                   share: float = 0.8) -> bool:
    need = Counter(eq)
    n = len(eq)
    if n == 0:
        return True
    w = max(int(n * window_factor), n)
    target = share * n
    have: Counter[str] = Counter()
    matched = 0
    for i, c in enumerate(stream):
        if have[c] < need[c]:
            matched += 1
        have[c] += 1
        if i >= w:
            old = stream[i - w]
            have[old] -= 1
            if have[old] < need[old]:
                matched -= 1
        if matched >= target:
            return True
    return False


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
    rw, ew = words(latex_to_text(ref_text)), words(extracted)
    common = sum((rw & ew).values())
    rb, eb = bigrams(latex_to_text(ref_text)), bigrams(extracted)
    bigram_recall = sum((rb & eb).values()) / max(sum(rb.values()), 1)
    stream = chars(extracted)
    eq_hits = sum(equation_found(chars(latex_to_text(e)), stream) for e in ref_eqs)
    return {
        "paper": d.name, "pages": pages,
        "headings": f"{hit}/{sum(want.values())}",
        "heading_recall": hit / max(sum(want.values()), 1),
        "word_recall": common / max(sum(rw.values()), 1),
        "word_precision": common / max(sum(ew.values()), 1),
        "bigram_recall": bigram_recall,
        "equations": f"{eq_hits}/{len(ref_eqs)}",
        "equation_share": eq_hits / max(len(ref_eqs), 1),
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
            "bigram_recall", "equations", "s_per_page"]
    fmt = {"heading_recall": "{:.3f}", "word_recall": "{:.3f}", "word_precision": "{:.3f}",
           "bigram_recall": "{:.3f}", "s_per_page": "{:.3f}"}
    table = [[fmt.get(c, "{}").format(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)))
    print("targets: heading_recall >= 0.9, word_recall >= 0.95, word_precision >= 0.9, "
          "s_per_page <= 0.2")
    for r in rows:
        if r["missing"]:
            print(f"{r['paper']}: headings not found: {r['missing']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
