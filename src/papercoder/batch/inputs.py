"""What a batch runs on: a folder of papers, a folder of PaperBench-style paper folders, or a
text file listing papers and arXiv ids.

Every paper becomes a :class:`PaperItem` with a unique, filesystem-safe slug: its output
folder is ``OUTDIR/<slug>/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from papercoder.errors import ConfigError

PAPER_SUFFIXES = (".pdf", ".md", ".markdown", ".tex", ".txt", ".json", ".tar.gz", ".tgz")
BENCH_NAMES = ("paper.md", "paper.pdf", "paper.tex")
"""A PaperBench-style folder holds one of these (the first found is read), and optionally
``rubric.json``, ``addendum.md`` and a ``reference/`` folder (the authors' code, for
``--eval reference-based``)."""
_ARXIV_ID = re.compile(r"^(?:arxiv:)?(\d{4}\.\d{4,5}(?:v\d+)?|[a-z-]+(?:\.[A-Z]{2})?/\d{7})$",
                       re.I)
_SKIP_DIRS = {"__pycache__", ".git"}


@dataclass(frozen=True)
class PaperItem:
    slug: str
    source: str
    """A path or an arXiv reference, as ``papercoder run`` takes it."""
    rubric: Path | None = None
    addendum: Path | None = None
    reference: Path | None = None
    """A reference repository (the folder's ``reference/``) for reference-based grading."""

    def to_dict(self) -> dict[str, str | None]:
        return {"slug": self.slug, "source": self.source,
                "rubric": str(self.rubric) if self.rubric else None,
                "addendum": str(self.addendum) if self.addendum else None,
                "reference": str(self.reference) if self.reference else None}


def slugify(text: str) -> str:
    name = text.rstrip("/").split("/")[-1]
    name = re.sub(r"(\.tar\.gz|\.tgz|\.pdf|\.tex|\.md|\.markdown|\.txt|\.json)$", "", name,
                  flags=re.I)
    name = re.sub(r"[^\w.-]+", "_", name, flags=re.ASCII).strip("._-")
    return name[:80] or "paper"


def _unique(items: list[PaperItem]) -> list[PaperItem]:
    seen: dict[str, int] = {}
    out = []
    for it in items:
        slug = it.slug
        n = seen.get(slug.lower(), 0)
        seen[slug.lower()] = n + 1
        if n:
            slug = f"{slug}-{n + 1}"
            seen[slug.lower()] = 1
        out.append(PaperItem(slug, it.source, it.rubric, it.addendum, it.reference))
    return out


def _bench_folder(d: Path) -> PaperItem | None:
    for name in BENCH_NAMES:
        if (d / name).is_file() and not (d / name).is_symlink():
            rubric = d / "rubric.json"
            addendum = d / "addendum.md"
            reference = d / "reference"
            return PaperItem(slugify(d.name), str(d / name),
                             rubric if rubric.is_file() else None,
                             addendum if addendum.is_file() else None,
                             reference if reference.is_dir() and not reference.is_symlink()
                             else None)
    return None


def _is_paper_file(p: Path) -> bool:
    return p.is_file() and p.name.lower().endswith(PAPER_SUFFIXES) and not p.name.startswith(".")


def from_folder(root: Path) -> list[PaperItem]:
    items: list[PaperItem] = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.name in _SKIP_DIRS or entry.is_symlink():
            continue
        if entry.is_dir():
            bench = _bench_folder(entry)
            if bench is not None:
                items.append(bench)
            elif any(entry.glob("*.tex")):  # a LaTeX source folder
                items.append(PaperItem(slugify(entry.name), str(entry)))
        elif _is_paper_file(entry):
            items.append(PaperItem(slugify(entry.name), str(entry)))
    return items


def _list_entry(line: str, base: Path) -> PaperItem | None:
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    m = _ARXIV_ID.match(text)
    if m:
        return PaperItem(slugify(m.group(1).replace("/", "_")), f"arxiv:{m.group(1)}")
    if text.lower().startswith(("http://", "https://")):
        return PaperItem(slugify(text), text)
    p = Path(text).expanduser()
    if not p.is_absolute():
        p = base / p
    if p.is_dir():
        return _bench_folder(p) or PaperItem(slugify(p.name), str(p))
    if p.is_file():
        return PaperItem(slugify(p.name), str(p))
    raise ConfigError(f"The list {base} names '{text[:80]}', which is neither an existing "
                      "path nor an arXiv id; fix that line or remove it.")


def from_list(path: Path) -> list[PaperItem]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"The list {path} could not be read ({type(e).__name__}); give a "
                          "UTF-8 text file with one paper path or arXiv id per line.") from None
    items = []
    for i, line in enumerate(lines, 1):
        try:
            item = _list_entry(line, path.parent)
        except ConfigError:
            raise ConfigError(f"Line {i} of {path} is neither an existing path nor an arXiv "
                              "id; fix that line or remove it.") from None
        if item is not None:
            items.append(item)
    return items


def discover(input_path: str | Path) -> list[PaperItem]:
    """The papers named by a batch's INPUT, with unique slugs, in a stable order."""
    p = Path(input_path).expanduser()
    if not p.exists():
        raise ConfigError(f"The batch input {p} does not exist; give a folder of papers or a "
                          "text file listing papers and arXiv ids.")
    if p.is_dir():
        items = from_folder(p)
        if not items:
            raise ConfigError(f"The folder {p} holds no papers (PDF, Markdown, LaTeX, text, "
                              "or PaperBench folders with paper.pdf|md|tex); check the path.")
    else:
        if p.name.lower().endswith((".pdf", ".tex", ".md", ".markdown", ".json", ".gz", ".tgz")):
            raise ConfigError(f"{p} is a single paper; use `papercoder run` for one paper, or "
                              "give batch a folder or a text file listing papers.")
        items = from_list(p)
        if not items:
            raise ConfigError(f"The list {p} names no papers; put one path or arXiv id per "
                              "line.")
    return _unique(items)
