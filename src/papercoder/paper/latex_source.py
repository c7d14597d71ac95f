"""Where LaTeX comes from: a .tex file, a folder, or an arXiv source archive. Finds the
main file and flattens \\input / \\include into one text.

Archives are read in memory with tarfile: only regular files, no absolute paths or "..",
bounded sizes. Nothing is written to disk.
"""

from __future__ import annotations

import gzip
import io
import posixpath
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from papercoder.errors import PaperError
from papercoder.paper.latex_lex import read_group, strip_comments

TEXT_SUFFIXES = (".tex", ".bbl", ".ltx", ".bib", ".sty", ".cls", ".def", ".cfg", ".txt")
MAX_MEMBERS = 5000
MAX_TEXT_BYTES = 20 * 1024 * 1024
MAX_UNPACKED = 200 * 1024 * 1024
_INPUT = re.compile(r"\\(input|include|subfile|import|subimport|includefrom|subincludefrom)"
                    r"(?![A-Za-z])\*?")
_BEGIN_DOC = re.compile(r"\\begin\s*\{document\}")


@dataclass
class Project:
    """The text files of a LaTeX project, keyed by POSIX path relative to its root."""

    files: dict[str, str]
    name: str
    warnings: list[str] = field(default_factory=list)
    pdf: bytes | None = None
    """Set when an 'archive' turned out to be a PDF (arXiv serves some papers that way)."""


def _decode(data: bytes, name: str, warnings: list[str]) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        warnings.append(f"{name} is not UTF-8; it was read as Latin-1.")
        return data.decode("latin-1")


def project_from_file(path: Path) -> Project:
    warnings: list[str] = []
    files = {path.name: _decode(path.read_bytes(), path.name, warnings)}
    # Sibling files, so that \input and the .bbl resolve.
    root = path.parent
    for p in _walk(root):
        rel = p.relative_to(root).as_posix()
        if rel not in files:
            files[rel] = _decode(p.read_bytes(), rel, warnings)
    return Project(files=files, name=str(path), warnings=warnings)


def _walk(root: Path) -> list[Path]:
    """The project's text files (bounded: a .tex file given from a big folder must not make
    us read the whole disk)."""
    out: list[Path] = []
    total = 0
    for n, p in enumerate(root.rglob("*")):
        if len(out) >= MAX_MEMBERS or n > 20 * MAX_MEMBERS:
            break
        if p.is_symlink() or not p.is_file() or p.suffix.lower() not in TEXT_SUFFIXES:
            continue
        if any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        size = p.stat().st_size
        if size > MAX_TEXT_BYTES or total + size > MAX_UNPACKED:
            continue
        total += size
        out.append(p)
    return sorted(out)


def project_from_dir(path: Path) -> Project:
    warnings: list[str] = []
    files = {p.relative_to(path).as_posix(): _decode(p.read_bytes(), p.name, warnings)
             for p in _walk(path)}
    if not any(k.endswith((".tex", ".ltx")) for k in files):
        raise PaperError(f"The folder {path} holds no .tex file; give a LaTeX project, a PDF "
                         "or a Markdown file.")
    return Project(files=files, name=str(path), warnings=warnings)


def _safe_member(name: str) -> str | None:
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    norm = posixpath.normpath(name)
    if norm.startswith("..") or "/../" in f"/{norm}/" or norm in (".", ""):
        return None
    return norm


def project_from_archive(data: bytes, name: str) -> Project:
    """An arXiv e-print: a tar(.gz) of the sources, a single gzipped .tex, or a PDF."""
    warnings: list[str] = []
    raw = data
    if data[:2] == b"\x1f\x8b":
        try:
            raw = _gunzip(data)
        except (OSError, EOFError, ValueError):
            raise PaperError(f"{name} is a damaged gzip archive; download it again.") from None
    if raw[:5] == b"%PDF-":
        return Project(files={}, name=name, pdf=raw)
    try:
        tf = tarfile.open(fileobj=io.BytesIO(raw), mode="r:")
    except tarfile.TarError:
        tf = None
    if tf is None:
        if raw[:1] in (b"\\", b"%") or b"\\begin{document}" in raw[:200_000] or \
                b"\\documentclass" in raw[:200_000]:
            return Project(files={"main.tex": _decode(raw, "main.tex", warnings)}, name=name,
                           warnings=warnings)
        raise PaperError(f"{name} is neither a LaTeX source archive nor a PDF; check the file.")
    files: dict[str, str] = {}
    total = 0
    skipped = 0
    try:
        with tf:
            for i, m in enumerate(tf):
                if i >= MAX_MEMBERS:
                    warnings.append(f"{name} has more than {MAX_MEMBERS} files; the rest "
                                    "were skipped.")
                    break
                if not m.isfile():
                    continue  # links, devices, directories
                safe = _safe_member(m.name)
                if safe is None:
                    skipped += 1
                    continue
                if not safe.lower().endswith(TEXT_SUFFIXES):
                    continue
                if m.size > MAX_TEXT_BYTES or total + m.size > MAX_UNPACKED:
                    warnings.append(f"{safe} in {name} is too large and was skipped.")
                    continue
                f = tf.extractfile(m)
                if f is None:
                    continue
                blob = f.read(MAX_TEXT_BYTES + 1)
                total += len(blob)
                files[safe] = _decode(blob, safe, warnings)
    except (tarfile.TarError, OSError, EOFError) as e:
        if not files:
            raise PaperError(f"{name} is a damaged archive ({type(e).__name__}); download it "
                             "again.") from None
        warnings.append(f"{name} is truncated; only part of it could be read.")
    if skipped:
        warnings.append(f"{skipped} file(s) in {name} with unsafe paths were ignored.")
    if not any(k.endswith((".tex", ".ltx")) for k in files):
        raise PaperError(f"{name} holds no .tex file; give the paper's PDF instead.")
    return Project(files=files, name=name, warnings=warnings)


def _gunzip(data: bytes) -> bytes:
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as g:
        out = g.read(MAX_UNPACKED + 1)
    if len(out) > MAX_UNPACKED:
        raise PaperError("The archive unpacks to more than 200 MB; give the paper's PDF "
                         "instead.")
    return out


def find_main(project: Project, prefer: str | None = None) -> str:
    """The main file: it has \\documentclass and \\begin{document}."""
    tex = [k for k in project.files if k.lower().endswith((".tex", ".ltx"))]
    if prefer and prefer in project.files:
        text = project.files[prefer]
        if _BEGIN_DOC.search(strip_comments(text)) or "\\section" in text:
            return prefer

    def score(k: str) -> tuple[int, int, int, int]:
        t = strip_comments(project.files[k])
        return (int("\\documentclass" in t) + int(bool(_BEGIN_DOC.search(t))),
                int(posixpath.basename(k).lower() in ("main.tex", "paper.tex", "ms.tex")),
                -k.count("/"), len(t))

    if not tex:
        raise PaperError(f"{project.name} holds no .tex file.")
    best = max(tex, key=score)
    if score(best)[0] == 0 and prefer in project.files:
        return prefer or best
    return best


def _resolve(project: Project, base: str, target: str) -> str | None:
    target = target.strip().strip('"')
    for cand in (target, target + ".tex"):
        for root in (base, ""):
            p = posixpath.normpath(posixpath.join(root, cand)) if root else \
                posixpath.normpath(cand)
            if p in project.files:
                return p
    return None


def flatten(project: Project, main: str) -> str:
    """The main file with every \\input/\\include replaced by its (comment-free) text."""
    base = posixpath.dirname(main)
    seen: set[str] = set()

    def expand(path: str, depth: int) -> str:
        if path in seen or depth > 20:
            project.warnings.append(f"{path} includes itself; the loop was cut.")
            return ""
        seen.add(path)
        text = strip_comments(project.files[path])
        out: list[str] = []
        pos = 0
        for m in _INPUT.finditer(text):
            if m.start() < pos:
                continue
            cmd = m.group(1)
            i = m.end()
            directory = ""
            if cmd in ("import", "subimport", "includefrom", "subincludefrom"):
                g = read_group(text, i)
                if g is None:
                    continue
                directory, i = g
                if cmd.startswith("sub"):
                    directory = posixpath.join(posixpath.dirname(path), directory)
            rest = text[i:]
            g = read_group(text, i)
            if g is not None and text[i:].lstrip().startswith("{"):
                target, end = g
            else:
                bare = re.match(r"\s+([^\s{}\\]+)", rest)
                if not bare:
                    continue
                target, end = bare.group(1), i + bare.end()
            found = _resolve(project, directory or base, target)
            out.append(text[pos:m.start()])
            if found is None:
                project.warnings.append(f"\\{cmd}{{{target}}} was not found; its text is "
                                        "missing.")
            elif found.endswith((".tex", ".ltx")) or "." not in posixpath.basename(found):
                out.append(expand(found, depth + 1))
            pos = end
        out.append(text[pos:])
        seen.discard(path)
        return "".join(out)

    return expand(main, 0)
