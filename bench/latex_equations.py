"""Every display equation of a LaTeX paper must come through as LaTeX.

Usage: python bench/latex_equations.py [PAPER.tex ...]
       (default: ../shared/papers/transformer/paper.tex)

The display equations are found in the raw source by an independent scan (equation, align,
gather, multline, eqnarray and their starred forms, \\[ \\] and $$ $$), the paper is read
with load_paper, and each equation is looked up, whitespace-insensitively, both in
Paper.equations and in the Markdown the pipeline sends to the model.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from papercoder.paper import load_paper  # noqa: E402

_DISPLAY = re.compile(r"\\begin\{(equation|align|gather|multline|eqnarray)(\*?)\}(.*?)"
                      r"\\end\{\1\2\}|\\\[(.*?)\\\]|\$\$(.*?)\$\$", re.S)


def _squash(s: str) -> str:
    s = re.sub(r"\\label\{[^}]*\}|\\nonumber|\\notag", "", s)
    return re.sub(r"\s+", "", s)


def _uncomment(src: str) -> str:
    return re.sub(r"(?<!\\)%[^\n]*", "", src)


def check(tex: Path) -> int:
    if not tex.is_file():
        print(f"skip {tex}: not found")
        return 0
    src = _uncomment(tex.read_text(encoding="utf-8", errors="replace"))
    found = [m.group(3) or m.group(4) or m.group(5) or "" for m in _DISPLAY.finditer(src)]
    paper = load_paper(tex)
    in_list = [_squash(e) for e in paper.equations]
    md = _squash(paper.to_markdown())
    print(f"{tex}: {len(found)} display equations in the source, "
          f"{len(paper.equations)} in Paper.equations")
    print(f"{'#':>2}  {'in equations':12}  {'in markdown':11}  equation")
    missing = 0
    for i, eq in enumerate(found, 1):
        key = _squash(eq)
        a = any(key in e for e in in_list)
        b = key in md
        missing += not (a and b)
        short = re.sub(r"\s+", " ", eq).strip()
        short = short if len(short) <= 70 else short[:67] + "..."
        print(f"{i:>2}  {'yes' if a else 'NO':12}  {'yes' if b else 'NO':11}  {short}")
    print(f"found as LaTeX: {len(found) - missing}/{len(found)}")
    return missing


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or [ROOT.parent / "shared" / "papers" / "transformer" /
                                        "paper.tex"]
    missing = sum(check(p) for p in paths)
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
